import type { ServiceRecord } from './record.js';
import type { Silence } from './self-preservation.js';

/**
 * Records in heartbeat order, split at the heartbeat timeout: `fresh` (heard within it) and
 * `silent` (not), each oldest first (a Map iterates in insertion order). A heartbeat moves its
 * record to the end of fresh, expiry moves the front of fresh to the end of silent, so the
 * questions of expiry and self-preservation are answered from the front, in time proportional to
 * the records that went silent, not to all records. Callers keep heardAtMs non-decreasing in the
 * order records are heard (the liveness clock never goes back).
 */
export class HeartbeatOrder implements Silence {
  private readonly fresh = new Map<string, ServiceRecord>();
  private readonly silent = new Map<string, ServiceRecord>();

  /** The newest heartbeat placed: a new one is never older (see stampable()). */
  private latest = Number.NEGATIVE_INFINITY;

  constructor(private readonly timeoutMs: number) {}

  /**
   * The liveness time to stamp a heartbeat with at `now`: `now`, or the newest heartbeat placed if
   * that is later (a self-preservation hold sets the clock back by up to one evaluation), so the
   * order stays sorted.
   */
  stampable(now: number): number {
    return Math.max(now, this.latest);
  }

  get total(): number {
    return this.fresh.size + this.silent.size;
  }

  /** `rec` was heard now: it goes to the end. */
  heard(rec: ServiceRecord): void {
    this.silent.delete(rec.name);
    this.fresh.delete(rec.name);
    this.fresh.set(rec.name, rec);
    if (rec.heardAtMs > this.latest) this.latest = rec.heardAtMs;
  }

  /** Another object for the same record, heard when it was: same place. */
  replace(rec: ServiceRecord): void {
    if (this.fresh.has(rec.name)) this.fresh.set(rec.name, rec);
    else if (this.silent.has(rec.name)) this.silent.set(rec.name, rec);
    else this.heard(rec);
  }

  remove(name: string): void {
    this.fresh.delete(name);
    this.silent.delete(name);
  }

  /** Moves the records silent at `now` to the silent side, calling `each` for every one moved. */
  expire(now: number, each: (rec: ServiceRecord) => void): void {
    for (const [name, rec] of this.fresh) {
      if (now - rec.heardAtMs < this.timeoutMs) break;
      this.fresh.delete(name);
      this.silent.set(name, rec);
      each(rec);
    }
  }

  /** Records silent at `t`, for `t` no earlier than the last expire(). */
  silentAt(t: number): number {
    let n = this.silent.size;
    for (const rec of this.fresh.values()) {
      if (t - rec.heardAtMs < this.timeoutMs) break;
      n++;
    }
    return n;
  }

  nthOldest(n: number): number {
    let i = 0;
    for (const rec of this.oldestFirst()) if (++i === n) return rec.heardAtMs;
    return Number.NaN;
  }

  /** Records silent for longer than `ms` at `now`, oldest first. */
  *silentLongerThan(now: number, ms: number): Generator<ServiceRecord> {
    for (const rec of this.oldestFirst()) {
      if (now - rec.heardAtMs <= ms) return;
      yield rec;
    }
  }

  /**
   * Sorts `records` anew and splits them at `now`: after the liveness clock was set back (a
   * self-preservation hold stops it where the threshold was crossed, up to a tick before now).
   */
  rebuild(records: Iterable<ServiceRecord>, now: number): void {
    this.fresh.clear();
    this.silent.clear();
    for (const rec of [...records].sort((a, b) => a.heardAtMs - b.heardAtMs)) {
      (now - rec.heardAtMs < this.timeoutMs ? this.fresh : this.silent).set(rec.name, rec);
      if (rec.heardAtMs > this.latest) this.latest = rec.heardAtMs;
    }
  }

  private *oldestFirst(): Generator<ServiceRecord> {
    yield* this.silent.values();
    yield* this.fresh.values();
  }
}
