/**
 * The configured keys, ready for lookups: by the SHA-256 of the key a client presents (the file
 * holds only hashes, or plain keys hashed at load), with a constant-time compare of the digests.
 * One KeySet per load; a reload builds a new one and swaps it in whole.
 */
import { timingSafeEqual } from 'node:crypto';
import { globRegExp, NameRules } from '../name-rules.js';
import { sha256Hex, type BackendKeyRule, type KeyConfig, type KeySpec } from './key-file.js';
import type { Limits } from './rate-limits.js';

export interface KeyEntry extends KeySpec {
  digest: Buffer;
  /** The key's limits, or undefined when it has none (then nothing is counted for it). */
  limits: Limits | undefined;
  /** The key may use every model (`*`), and send requests that name none. */
  allModels: boolean;
  /** Whether the key may use `model`. */
  allows(model: string): boolean;
}

/** Either form of the key a client may send; undefined when it sent none. */
export function presentedKey(headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string' && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') {
    const key = auth.slice(7).trim();
    if (key !== '') return key;
  }
  const xkey = headers['x-api-key'];
  if (typeof xkey === 'string' && xkey.trim() !== '') return xkey.trim();
  return undefined;
}

function modelMatcher(models: readonly string[]): (model: string) => boolean {
  if (models.includes('*')) return () => true;
  const rules = new NameRules(models.map((m) => [m, true] as const));
  return (model) => rules.get(model) === true;
}

export class KeySet {
  private readonly byHash = new Map<string, KeyEntry>();
  readonly names: ReadonlySet<string>;
  private readonly backendRules: Array<{ re: RegExp; env: string }>;
  /** Header line per backend name (`''` for none), found once per backend per load. */
  private readonly backendLines = new Map<string, string>();

  constructor(
    readonly config: KeyConfig,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    for (const k of config.keys) {
      const limits: Limits = {};
      if (k.rpm !== undefined) limits.rpm = k.rpm;
      if (k.tpm !== undefined) limits.tpm = k.tpm;
      if (k.maxParallelRequests !== undefined) limits.maxParallelRequests = k.maxParallelRequests;
      const entry: KeyEntry = { ...k, digest: Buffer.from(k.sha256, 'hex'), limits: Object.keys(limits).length > 0 ? limits : undefined, allModels: k.models.includes('*'), allows: modelMatcher(k.models) };
      this.byHash.set(k.sha256, entry);
    }
    this.names = new Set(config.keys.map((k) => k.name));
    this.backendRules = config.backendKeyEnv.map((r: BackendKeyRule) => ({ re: globRegExp(r.pattern), env: r.env }));
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The entry of a presented key, or undefined for an unknown one. */
  lookup(presented: string): KeyEntry | undefined {
    const hex = sha256Hex(presented);
    const entry = this.byHash.get(hex);
    // the map finds a candidate by the digest; the final word is a constant-time compare
    return entry !== undefined && timingSafeEqual(Buffer.from(hex, 'hex'), entry.digest) ? entry : undefined;
  }

  /** Environment variables the backend rules name that are not set (told once at load). */
  missingBackendEnv(): string[] {
    return [...new Set(this.backendRules.map((r) => r.env))].filter((e) => !this.env[e]);
  }

  /** `authorization: Bearer ...` header line for a backend (the first rule matching its name), or ''. */
  backendLine(name: string): string {
    let line = this.backendLines.get(name);
    if (line === undefined) {
      const rule = this.backendRules.find((r) => r.re.test(name));
      const value = rule !== undefined ? this.env[rule.env] : undefined;
      // a value that could break the header block is not sent
      line = value !== undefined && value !== '' && /^[\x20-\x7e]+$/.test(value) ? `authorization: Bearer ${value}\r\n` : '';
      if (this.backendLines.size > 100_000) this.backendLines.clear();
      this.backendLines.set(name, line);
    }
    return line;
  }
}
