import { UsageError } from '../common/command.js';
import type { BackendSpec } from './backend.js';
import { NameRules } from './name-rules.js';

/** The largest limit accepted anywhere (beyond it a limit means nothing). */
const MAX_LIMIT = 1_000_000;

/** `metadata.max_concurrency` as a limit: a positive integer, or its decimal digits; anything else is no limit given. */
export function metadataLimit(metadata: Record<string, unknown>): number | undefined {
  const v = metadata.max_concurrency;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,7}$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n > 0 && n <= MAX_LIMIT ? n : undefined;
}

/** A process's share of a limit when `workers` processes each enforce their own: rounded up, so none gets 0. */
export function perProcess(limit: number, workers: number): number {
  return limit > 0 && workers > 1 ? Math.ceil(limit / workers) : limit;
}

export interface BackendLimitOptions {
  /** --backend-max-concurrency: for backends that give none (0: unlimited). */
  defaultLimit: number;
  /** The config file's [max_concurrency] table: backend name or glob -> limit (0: unlimited). */
  table?: Readonly<Record<string, unknown>>;
  /** --workers: each process enforces its share. */
  workers: number;
}

/**
 * How many requests a backend may have in flight from this process: the config file's entry for
 * its name (exact first, then globs in file order), else its registration's
 * `metadata.max_concurrency`, else --backend-max-concurrency; 0 is unlimited. With --workers N
 * each process gets ceil(limit / N) (in-flight counts are per process).
 */
export class BackendLimits {
  private readonly table: NameRules<number>;

  constructor(private readonly opts: BackendLimitOptions) {
    const entries = Object.entries(opts.table ?? {});
    for (const [pattern, v] of entries) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_LIMIT) {
        throw new UsageError(`config file: key 'max_concurrency."${pattern}"': expected an integer from 0 (unlimited) to ${MAX_LIMIT}, got ${JSON.stringify(v)}`);
      }
    }
    this.table = new NameRules(entries as Array<[string, number]>);
  }

  /** Whether any backend can have a limit without registering one. */
  get configured(): boolean {
    return this.opts.defaultLimit > 0 || this.table.size > 0;
  }

  /** The limit of this process for a backend described by `spec`. */
  readonly of = (spec: Pick<BackendSpec, 'name' | 'metadata'>): number => perProcess(this.limit(spec), this.opts.workers);

  private limit(spec: Pick<BackendSpec, 'name' | 'metadata'>): number {
    return this.table.get(spec.name) ?? metadataLimit(spec.metadata) ?? this.opts.defaultLimit;
  }
}
