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
 * GET /services bodies by query, reused while nothing changed. A rebuild copies per-record JSON
 * fragments kept per record object (a change replaces the object; a heartbeat only moves
 * last_heartbeat, spliced in) into one buffer, and keeps names sorted by merging in the new ones,
 * so it costs a copy of the body, not a serialisation and sort of every record.
 */
export class ListingCache {
  private readonly bodies = new Map<string, Cached>();
  /** Names in order, as of `members` (store.position()). */
  private names: string[] = [];
  private nameSet = new Set<string>();
  private members = -1;
  private readonly fragments = new WeakMap<ServiceRecord, [Buffer, Buffer, Buffer]>();

  constructor(
    private readonly store: ServiceStore,
    private readonly wallNow: () => number,
    private readonly monotonicNow: () => number = () => performance.now(),
  ) {}

  /** The body for `status=` (null: any) and `healthy=` (undefined: any). */
  body(status: string | null, healthy: boolean | undefined): Buffer {
    this.store.evaluateHealth();
    const { index, epoch, members } = this.store.position();
    const key = `${healthy ?? '-'}:${status === null ? '-' : `=${status}`}`;
    const now = this.monotonicNow();
    const hit = this.bodies.get(key);
    if (hit && hit.index === index && hit.epoch === epoch && now - hit.builtAt < LISTING_MAX_AGE_MS) return hit.body;
    if (members !== this.members) this.sortNames(members);
    const body = this.build(index, epoch, status, healthy);
    this.bodies.delete(key);
    if (this.bodies.size >= MAX_QUERIES) this.bodies.delete(this.bodies.keys().next().value!);
    this.bodies.set(key, { index, epoch, builtAt: now, body });
    return body;
  }

  /** Drops names gone and merges in new ones (sorted among themselves): O(N + k log k). */
  private sortNames(members: number): void {
    const records = this.store.all();
    const added: string[] = [];
    for (const name of records.keys()) if (!this.nameSet.has(name)) added.push(name);
    added.sort(byCodeUnits);
    const kept = this.names.filter((n) => records.has(n));
    for (const n of this.names) if (!records.has(n)) this.nameSet.delete(n);
    for (const n of added) this.nameSet.add(n);
    const merged: string[] = new Array(kept.length + added.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < kept.length && j < added.length) merged[k++] = byCodeUnits(kept[i]!, added[j]!) < 0 ? kept[i++]! : added[j++]!;
    while (i < kept.length) merged[k++] = kept[i++]!;
    while (j < added.length) merged[k++] = added[j++]!;
    this.names = merged;
    this.members = members;
  }

  private build(index: number, epoch: string, status: string | null, healthy: boolean | undefined): Buffer {
    const records = this.store.all();
    const picked: Array<[Buffer, Buffer, Buffer]> = [];
    const dynamic: string[] = [];
    const isHealthyNow = this.store.healthNow();
    let size = 0;
    for (const name of this.names) {
      const rec = records.get(name)!;
      if (status !== null && rec.status !== status) continue;
      const isHealthy = isHealthyNow(rec);
      if (healthy !== undefined && isHealthy !== healthy) continue;
      const f = this.fragmentsOf(rec);
      const heartbeat = JSON.stringify(rec.lastHeartbeatMs / 1000);
      picked.push(f);
      dynamic.push(heartbeat, isHealthy ? 'true' : 'false');
      // The spliced values are ASCII: one byte per character.
      size += f[0].length + f[1].length + f[2].length + heartbeat.length + (isHealthy ? 4 : 5) + 1;
    }
    const head = '{"services":[';
    const foot = `],"total":${picked.length},"timestamp":${JSON.stringify(rfc3339(this.wallNow()))},"index":${index},"epoch":${JSON.stringify(epoch)}}`;
    const out = Buffer.allocUnsafe(head.length + size + Buffer.byteLength(foot));
    let at = out.write(head, 0, 'latin1');
    // Uint8Array.set and a byte loop: Buffer.copy and write cost a native call each.
    const ascii = (text: string) => {
      for (let c = 0; c < text.length; c++) out[at++] = text.charCodeAt(c);
    };
    for (let i = 0; i < picked.length; i++) {
      const [a, b, c] = picked[i]!;
      if (i > 0) out[at++] = 0x2c; // ,
      out.set(a, at);
      at += a.length;
      ascii(dynamic[2 * i]!);
      out.set(b, at);
      at += b.length;
      ascii(dynamic[2 * i + 1]!);
      out.set(c, at);
      at += c.length;
    }
    at += out.write(foot, at);
    return out.subarray(0, at);
  }

  /** The record's view as JSON around last_heartbeat and is_healthy, in the view's key order (record.ts toView). */
  private fragmentsOf(rec: ServiceRecord): [Buffer, Buffer, Buffer] {
    let f = this.fragments.get(rec);
    if (!f) {
      const { name, host, port, hostname, url, status, timestamp } = rec;
      const head = `${JSON.stringify({ name, host, port, hostname, url, status, timestamp }).slice(0, -1)},"last_heartbeat":`;
      const mid = `,"health_status":${JSON.stringify(rec.health_status)},"is_healthy":`;
      const tail = `,"metadata":${JSON.stringify(rec.metadata)}${rec.weight !== undefined ? `,"weight":${JSON.stringify(rec.weight)}` : ''}}`;
      f = [Buffer.from(head), Buffer.from(mid), Buffer.from(tail)];
      this.fragments.set(rec, f);
    }
    return f;
  }
}

/** The order of `<` on strings (UTF-16 code units), as the listing always had. */
function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
