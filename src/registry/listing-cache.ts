import { rfc3339 } from '../common/time.js';
import type { ServiceRecord } from './record.js';
import type { ServiceStore } from './store.js';

/**
 * How old a cached GET /services body may be while the feed index stands still. Everything in a
 * listing but `last_heartbeat` (and the answer's `timestamp`) changes only with the index: puts,
 * deletes and is_healthy flips are all feed events, and health is evaluated before each read. So
 * a listing is exact but for last_heartbeat values up to this old.
 */
export const LISTING_MAX_AGE_MS = 1000;
/** Distinct queries (status= values are free text) whose bodies are kept. */
const MAX_QUERIES = 32;

interface Cached {
  index: number;
  epoch: string;
  builtAt: number;
  body: Buffer;
}

/**
 * GET /services bodies by query, reused while nothing changed. A rebuild joins per-record JSON
 * fragments kept per record object (a change replaces the object; a heartbeat only moves
 * last_heartbeat, spliced in), so it costs string joins, not a serialisation of every record.
 */
export class ListingCache {
  private readonly bodies = new Map<string, Cached>();
  private sorted: { index: number; epoch: string; records: ServiceRecord[] } | undefined;
  private readonly fragments = new WeakMap<ServiceRecord, [string, string, string]>();

  constructor(
    private readonly store: ServiceStore,
    private readonly wallNow: () => number,
    private readonly monotonicNow: () => number = () => performance.now(),
  ) {}

  /** The body for `status=` (null: any) and `healthy=` (undefined: any). */
  body(status: string | null, healthy: boolean | undefined): Buffer {
    this.store.evaluateHealth();
    const { index, epoch } = this.store.position();
    const key = `${healthy ?? '-'}:${status === null ? '-' : `=${status}`}`;
    const now = this.monotonicNow();
    const hit = this.bodies.get(key);
    if (hit && hit.index === index && hit.epoch === epoch && now - hit.builtAt < LISTING_MAX_AGE_MS) return hit.body;
    const body = this.build(index, epoch, status, healthy);
    this.bodies.delete(key);
    if (this.bodies.size >= MAX_QUERIES) this.bodies.delete(this.bodies.keys().next().value!);
    this.bodies.set(key, { index, epoch, builtAt: now, body });
    return body;
  }

  private build(index: number, epoch: string, status: string | null, healthy: boolean | undefined): Buffer {
    if (this.sorted?.index !== index || this.sorted.epoch !== epoch) {
      const records = [...this.store.all()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      this.sorted = { index, epoch, records };
    }
    const parts: string[] = [];
    let total = 0;
    for (const rec of this.sorted.records) {
      if (status !== null && rec.status !== status) continue;
      const isHealthy = this.store.isHealthy(rec);
      if (healthy !== undefined && isHealthy !== healthy) continue;
      const [head, mid, tail] = this.fragmentsOf(rec);
      parts.push(`${total++ === 0 ? '' : ','}${head}${JSON.stringify(rec.lastHeartbeatMs / 1000)}${mid}${isHealthy}${tail}`);
    }
    return Buffer.from(`{"services":[${parts.join('')}],"total":${total},"timestamp":${JSON.stringify(rfc3339(this.wallNow()))},"index":${index},"epoch":${JSON.stringify(epoch)}}`);
  }

  /** The record's view as JSON around last_heartbeat and is_healthy, in the view's key order (record.ts toView). */
  private fragmentsOf(rec: ServiceRecord): [string, string, string] {
    let f = this.fragments.get(rec);
    if (!f) {
      const { name, host, port, hostname, url, status, timestamp } = rec;
      const head = `${JSON.stringify({ name, host, port, hostname, url, status, timestamp }).slice(0, -1)},"last_heartbeat":`;
      const mid = `,"health_status":${JSON.stringify(rec.health_status)},"is_healthy":`;
      const tail = `,"metadata":${JSON.stringify(rec.metadata)}${rec.weight !== undefined ? `,"weight":${JSON.stringify(rec.weight)}` : ''}}`;
      f = [head, mid, tail];
      this.fragments.set(rec, f);
    }
    return f;
  }
}
