import type { ListingBody } from './listing-cache.js';
import type { ServiceRecord } from './record.js';
import type { ServiceStore } from './store.js';

/**
 * GET /prometheus/targets: the registry's records as Prometheus HTTP service discovery
 * (`http_sd_configs`), so Prometheus scrapes every babysitter and engine without a list kept by
 * hand. One target group per record; its labels are meant for relabeling (keep or drop by role,
 * then copy the names wanted):
 *   __meta_infini_role     babysitter (a babysitter's own record), engine (metadata.type
 *                          "openai-api"), or other
 *   __meta_infini_name     the record's name (the router's `backend` label for an engine)
 *   __meta_infini_type     metadata.type ("" when absent)
 *   __meta_infini_parent   metadata.parent_service: the babysitter that runs this engine ("" when none)
 *   __meta_infini_healthy  "true" or "false", as is_healthy
 *   __meta_infini_models   metadata.models joined with commas, with a comma at each end ("" when none)
 *   __scheme__             the scheme of the record's url (http or https)
 */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

export type TargetRole = 'babysitter' | 'engine' | 'other';

/** A babysitter's own record names it (`babysitter`) and no parent; its engine's record does both. */
export function targetRole(metadata: Record<string, unknown>): TargetRole {
  if (metadata.babysitter !== undefined && metadata.parent_service === undefined) return 'babysitter';
  if (metadata.type === 'openai-api') return 'engine';
  return 'other';
}

/**
 * host:port and scheme to scrape: from the url (what the record advertises to clients), else host
 * and port. An IPv6 host keeps its brackets, as a target needs them.
 */
export function targetAddress(rec: Pick<ServiceRecord, 'url' | 'host' | 'port'>): { target: string; scheme: 'http' | 'https' | undefined } {
  try {
    const u = new URL(rec.url);
    if (u.protocol === 'http:' || u.protocol === 'https:') {
      const scheme = u.protocol === 'https:' ? 'https' : 'http';
      return { target: `${u.hostname}:${u.port || (scheme === 'https' ? '443' : '80')}`, scheme };
    }
  } catch {
    // fall through to host and port (the registry only accepts http(s) URLs; this is for safety)
  }
  const host = rec.host.includes(':') && !rec.host.startsWith('[') ? `[${rec.host}]` : rec.host;
  return { target: `${host}:${rec.port}`, scheme: undefined };
}

/** The target group of one record, given whether it is healthy now. */
export function targetGroup(rec: Pick<ServiceRecord, 'name' | 'url' | 'host' | 'port' | 'metadata'>, healthy: boolean): TargetGroup {
  const meta = rec.metadata;
  const models = Array.isArray(meta.models) ? meta.models.filter((m): m is string => typeof m === 'string') : [];
  const { target, scheme } = targetAddress(rec);
  const labels: Record<string, string> = {
    __meta_infini_role: targetRole(meta),
    __meta_infini_name: rec.name,
    __meta_infini_type: typeof meta.type === 'string' ? meta.type : '',
    __meta_infini_parent: typeof meta.parent_service === 'string' ? meta.parent_service : '',
    __meta_infini_healthy: String(healthy),
    __meta_infini_models: models.length > 0 ? `,${models.join(',')},` : '',
  };
  if (scheme) labels.__scheme__ = scheme;
  return { targets: [target], labels };
}

/** Records serialised per step of a rebuild (the event loop runs between steps). */
const CHUNK = 2000;

interface Cached {
  index: number;
  epoch: string;
  body: Promise<ListingBody>;
}

/**
 * The GET /prometheus/targets body, reused while the feed index stands still. Unlike a listing it
 * holds no heartbeat time: every label changes only with a feed event (puts, deletes, is_healthy
 * flips, and expiry is evaluated before each read), so a body is exact for its index and needs no
 * age limit. A Prometheus refreshing every 15 s, or many of them, costs a send of the same buffers
 * while only heartbeats arrive. A rebuild takes records and their health in one synchronous pass,
 * then joins each record's JSON, kept per record object (a change replaces the object) and health.
 */
export class PrometheusTargets {
  private cached: Cached | undefined;
  private readonly fragments = new WeakMap<ServiceRecord, [Buffer | undefined, Buffer | undefined]>();

  constructor(private readonly store: ServiceStore) {}

  body(): Promise<ListingBody> {
    this.store.evaluateHealth();
    const { index, epoch } = this.store.position();
    if (this.cached && this.cached.index === index && this.cached.epoch === epoch) return this.cached.body;
    const body = this.build();
    this.cached = { index, epoch, body };
    return body;
  }

  private async build(): Promise<ListingBody> {
    const isHealthyNow = this.store.healthNow();
    const records: ServiceRecord[] = [];
    const health: boolean[] = [];
    for (const rec of this.store.all().values()) {
      records.push(rec);
      health.push(isHealthyNow(rec));
    }
    const chunks: Buffer[] = [Buffer.from('[')];
    for (let from = 0; from < records.length; from += CHUNK) {
      if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const to = Math.min(records.length, from + CHUNK);
      const parts: Buffer[] = [];
      for (let i = from; i < to; i++) {
        if (i > 0) parts.push(COMMA);
        parts.push(this.fragmentOf(records[i]!, health[i]!));
      }
      chunks.push(Buffer.concat(parts));
    }
    chunks.push(Buffer.from(']'));
    return { chunks, length: chunks.reduce((n, c) => n + c.length, 0) };
  }

  private fragmentOf(rec: ServiceRecord, healthy: boolean): Buffer {
    let pair = this.fragments.get(rec);
    if (!pair) this.fragments.set(rec, (pair = [undefined, undefined]));
    const at = healthy ? 1 : 0;
    return (pair[at] ??= Buffer.from(JSON.stringify(targetGroup(rec, healthy))));
  }
}

const COMMA = Buffer.from(',');
