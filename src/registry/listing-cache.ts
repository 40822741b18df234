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
/** Records serialised per step of a rebuild (the event loop runs between steps). */
const CHUNK = 2000;

/** A body as consecutive buffers (a large listing is built and sent in steps). */
export interface ListingBody {
  chunks: Buffer[];
  length: number;
}

interface Cached {
  index: number;
  epoch: string;
  builtAt: number;
  body: Promise<ListingBody>;
}

/**
 * GET /services bodies by query, reused while nothing changed. A rebuild takes the records it
 * lists, their last_heartbeat and is_healthy in one synchronous pass (one consistent state at one
 * index), then serialises them in steps of CHUNK records from JSON fragments kept per record object
 * (a change replaces the object; a heartbeat only moves last_heartbeat, spliced in). Names are kept
 * sorted by merging in the new ones. Requests during a rebuild share it.
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
  body(status: string | null, healthy: boolean | undefined): Promise<ListingBody> {
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
    // The default sort compares UTF-16 code units, as `<` does (the listing's order), and fast.
    added.sort();
    const kept = this.names.filter((n) => records.has(n));
    for (const n of this.names) if (!records.has(n)) this.nameSet.delete(n);
    for (const n of added) this.nameSet.add(n);
    const merged: string[] = new Array(kept.length + added.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < kept.length && j < added.length) merged[k++] = kept[i]! < added[j]! ? kept[i++]! : added[j++]!;
    while (i < kept.length) merged[k++] = kept[i++]!;
    while (j < added.length) merged[k++] = added[j++]!;
    this.names = merged;
    this.members = members;
  }

  private async build(index: number, epoch: string, status: string | null, healthy: boolean | undefined): Promise<ListingBody> {
    // One synchronous pass: the records (objects are replaced, never changed, but for heartbeat
    // times), with their heartbeat and health at this moment.
    const records = this.store.all();
    const isHealthyNow = this.store.healthNow();
    const picked: ServiceRecord[] = [];
    const heartbeats: number[] = [];
    const health: boolean[] = [];
    for (const name of this.names) {
      const rec = records.get(name)!;
      if (status !== null && rec.status !== status) continue;
      const isHealthy = isHealthyNow(rec);
      if (healthy !== undefined && isHealthy !== healthy) continue;
      picked.push(rec);
      heartbeats.push(rec.lastHeartbeatMs);
      health.push(isHealthy);
    }
    const chunks: Buffer[] = [Buffer.from('{"services":[')];
    for (let from = 0; from < picked.length; from += CHUNK) {
      if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      chunks.push(this.serialise(picked, heartbeats, health, from, Math.min(picked.length, from + CHUNK)));
    }
    chunks.push(Buffer.from(`],"total":${picked.length},"timestamp":${JSON.stringify(rfc3339(this.wallNow()))},"index":${index},"epoch":${JSON.stringify(epoch)}}`));
    return { chunks, length: chunks.reduce((n, c) => n + c.length, 0) };
  }

  /** Records [from, to) as one buffer, a comma before each but the very first. */
  private serialise(picked: ServiceRecord[], heartbeats: number[], health: boolean[], from: number, to: number): Buffer {
    const frags: Array<[Buffer, Buffer, Buffer]> = [];
    const beats: string[] = [];
    let size = 0;
    for (let i = from; i < to; i++) {
      const f = this.fragmentsOf(picked[i]!);
      const beat = JSON.stringify(heartbeats[i]! / 1000);
      frags.push(f);
      beats.push(beat);
      // The spliced values are ASCII: one byte per character.
      size += (i > 0 ? 1 : 0) + f[0].length + beat.length + f[1].length + (health[i] ? 4 : 5) + f[2].length;
    }
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    // Uint8Array.set and a byte loop: Buffer.copy and write cost a native call each.
    const ascii = (text: string) => {
      for (let c = 0; c < text.length; c++) out[at++] = text.charCodeAt(c);
    };
    for (let i = from; i < to; i++) {
      const [a, b, c] = frags[i - from]!;
      if (i > 0) out[at++] = 0x2c; // ,
      out.set(a, at);
      at += a.length;
      ascii(beats[i - from]!);
      out.set(b, at);
      at += b.length;
      ascii(health[i] ? 'true' : 'false');
      out.set(c, at);
      at += c.length;
    }
    return out;
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
