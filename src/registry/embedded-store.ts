import type { Logger } from '../common/log.js';
import { ChangeFeed, type ChangeListener } from './change-feed.js';
import { GroupCommit } from './group-commit.js';
import { LivenessClock } from './liveness-clock.js';
import { isHealthy, newRecord, toView, type Registration, type ServicePatch, type ServiceRecord, type ServiceView } from './record.js';
import { isMassExpiry, SelfPreservation } from './self-preservation.js';
import type { StateFile } from './state-file.js';
import type { ServiceStore, WatchResult } from './store.js';

export interface EmbeddedStoreOptions {
  heartbeatTimeoutMs: number;
  /** Longest self-preservation hold (the stale timeout). */
  maxHoldMs: number;
  /** Absent with --no-persist: memory only. */
  stateFile?: StateFile;
  log?: Logger;
  /** Wall clock for timestamps and last_heartbeat. */
  now?: () => number;
  /** The clock heartbeats age in; by default one that excludes pauses of this process. */
  clock?: LivenessClock;
}

/**
 * The changes of one commit group, applied over the committed records without touching them: if
 * the write fails, the draft is dropped and nothing of it was ever visible.
 */
class Draft {
  readonly changes = new Map<string, ServiceRecord | null>();
  readonly events: Array<{ type: 'put' | 'delete'; rec: ServiceRecord }> = [];

  constructor(private readonly base: Map<string, ServiceRecord>) {}

  get(name: string): ServiceRecord | undefined {
    return this.changes.has(name) ? (this.changes.get(name) ?? undefined) : this.base.get(name);
  }

  put(rec: ServiceRecord): void {
    this.changes.set(rec.name, rec);
    this.events.push({ type: 'put', rec });
  }

  delete(rec: ServiceRecord): void {
    this.changes.set(rec.name, null);
    this.events.push({ type: 'delete', rec });
  }

  records(): ServiceRecord[] {
    const out: ServiceRecord[] = [];
    for (const [name, rec] of this.base) if (!this.changes.has(name)) out.push(rec);
    for (const rec of this.changes.values()) if (rec) out.push(rec);
    return out;
  }
}

type Job = (draft: Draft) => unknown;

/**
 * Single-process store: records in memory, changes numbered in a feed, state saved to a file.
 *
 * Durability: every change of registrations (register, update, deregister, status, health_status,
 * expiry) is written to the state file before it becomes visible (reads, feed) and before its
 * caller is answered; concurrent changes share one write (group commit). Heartbeats that change
 * nothing but the heartbeat time are applied at once and never written: a reloaded record counts
 * as heard from at start-up anyway. A failed write rejects every change of its group with
 * StateWriteError and leaves memory as it was.
 *
 * Expiry: heartbeats age on the liveness clock (pauses of this process excluded), and
 * self-preservation holds expiry when most records go silent at once (self-preservation.ts).
 */
export class EmbeddedStore implements ServiceStore {
  private readonly records = new Map<string, ServiceRecord>();
  /** is_healthy last announced per record, so flips can be emitted as `health` events. */
  private readonly announcedHealthy = new Map<string, boolean>();
  private feed = new ChangeFeed();
  private readonly now: () => number;
  private readonly clock: LivenessClock;
  private readonly preservation: SelfPreservation;
  private readonly commits = new GroupCommit<Job, unknown>((jobs) => this.commit(jobs));

  constructor(private readonly opts: EmbeddedStoreOptions) {
    this.now = opts.now ?? Date.now;
    // Short stalls of a busy event loop are credited quietly; a real stop is worth a warning.
    const onPause = (ms: number) =>
      opts.log?.[ms >= 1000 ? 'warn' : 'debug']({ paused_ms: Math.round(ms) }, 'registry was not running (paused or blocked); that time does not count against heartbeats');
    this.clock = opts.clock ?? new LivenessClock({ onPause });
    this.preservation = new SelfPreservation(this.clock, opts.heartbeatTimeoutMs, opts.maxHoldMs, opts.log);
  }

  /** Starts the liveness clock, removes leftovers of interrupted writes, restores records (if any). */
  async open(): Promise<number> {
    this.clock.start();
    if (!this.opts.stateFile) return 0;
    await this.opts.stateFile.removeStaleTemps();
    const state = await this.opts.stateFile.load(this.now(), this.clock.now());
    this.feed = new ChangeFeed(state.index);
    for (const rec of state.services) {
      this.records.set(rec.name, rec);
      this.announcedHealthy.set(rec.name, this.isHealthy(rec));
    }
    return state.services.length;
  }

  async get(name: string): Promise<ServiceRecord | undefined> {
    return this.records.get(name);
  }

  async list(): Promise<{ services: ServiceRecord[]; index: number; epoch: string }> {
    return { services: [...this.records.values()], index: this.feed.index, epoch: this.feed.epoch };
  }

  put(reg: Registration): Promise<ServiceRecord> {
    return this.submit((draft) => {
      const rec = newRecord(reg, this.now(), this.clock.now());
      draft.put(rec);
      return rec;
    });
  }

  update(name: string, patch: ServicePatch, opts: { heartbeat: boolean }): Promise<ServiceRecord | undefined> {
    return this.submit((draft) => {
      const old = draft.get(name);
      if (!old) return undefined;
      // A probe that only confirms the same health_status, or a PUT of {}, is no change to persist.
      const significant = Object.keys(patch).some((k) => JSON.stringify((patch as Record<string, unknown>)[k]) !== JSON.stringify((old as unknown as Record<string, unknown>)[k]));
      if (!significant) {
        if (opts.heartbeat) this.heard(old);
        return old;
      }
      const rec: ServiceRecord = { ...old, ...patch };
      if (opts.heartbeat) this.stamp(rec);
      draft.put(rec);
      return rec;
    });
  }

  /** A plain heartbeat is applied at once (nothing to persist); a status change is an update. */
  async touch(name: string, status?: string): Promise<ServiceRecord | undefined> {
    const old = this.records.get(name);
    if (!old) return undefined;
    if (status !== undefined && status !== old.status) return this.update(name, { status }, { heartbeat: true });
    this.heard(old);
    return old;
  }

  delete(name: string): Promise<ServiceRecord | undefined> {
    return this.submit((draft) => {
      const rec = draft.get(name);
      if (rec) draft.delete(rec);
      return rec;
    });
  }

  /**
   * Deletes, in one commit, every record silent for longer than `staleTimeoutMs` on the liveness
   * clock (nothing while self-preservation holds). Evicting a mass at once (possible only after a
   * hold ended without heartbeats resuming) is logged with its reason.
   */
  expireStale(staleTimeoutMs: number): Promise<Array<{ rec: ServiceRecord; silentMs: number }>> {
    return this.submit((draft) => {
      this.assessExpiry();
      const now = this.clock.now();
      const all = draft.records();
      const expired: Array<{ rec: ServiceRecord; silentMs: number }> = [];
      for (const rec of all) {
        const silentMs = now - rec.heardAtMs;
        if (silentMs > staleTimeoutMs) {
          draft.delete(rec);
          expired.push({ rec, silentMs });
        }
      }
      if (isMassExpiry(expired.length, all.length)) {
        this.opts.log?.warn({ evicting: expired.length, total: all.length, reason: this.massReason() }, 'mass eviction: most services silent past the stale timeout at once');
      }
      return expired;
    });
  }

  watch(since: number | undefined, listener: ChangeListener, epoch?: string): WatchResult {
    const backlog = since === undefined ? [] : epoch !== undefined && epoch !== this.feed.epoch ? 'reset' : this.feed.since(since);
    return { backlog, index: this.feed.index, unsubscribe: this.feed.subscribe(listener) };
  }

  /** Announces is_healthy flips by expiry (on a timer), after self-preservation had its say. */
  evaluateHealth(): void {
    this.assessExpiry();
    let expired = 0;
    for (const rec of this.records.values()) if (this.announceHealth(rec) === false && rec.status === 'running') expired++;
    if (isMassExpiry(expired, this.records.size)) {
      this.opts.log?.warn({ unhealthy: expired, total: this.records.size, reason: this.massReason() }, 'mass expiry: most services turned unhealthy at once');
    }
  }

  isHealthy(rec: ServiceRecord): boolean {
    return isHealthy(rec, this.clock.now(), this.opts.heartbeatTimeoutMs);
  }

  view(rec: ServiceRecord): ServiceView {
    return toView(rec, this.clock.now(), this.opts.heartbeatTimeoutMs);
  }

  /** Waits for every submitted change to be committed (or to fail). */
  async close(): Promise<void> {
    await this.commits.drain();
    this.clock.stop();
  }

  /** Lets self-preservation hold or release the clock before expiry is evaluated. */
  private assessExpiry(): void {
    const heardAts = new Float64Array(this.records.size);
    let i = 0;
    for (const rec of this.records.values()) heardAts[i++] = rec.heardAtMs;
    // The feed index tells an operator which events came before and after a hold.
    this.preservation.assess(heardAts, { feed_index: this.feed.index });
  }

  private massReason(): string {
    return this.preservation.state === 'spent'
      ? 'silent through a whole self-preservation hold: taken as a real loss'
      : 'not held: the silent share stayed within the self-preservation threshold as they went quiet';
  }

  private stamp(rec: ServiceRecord): void {
    rec.lastHeartbeatMs = this.now();
    rec.heardAtMs = this.clock.now();
  }

  private submit<T>(job: (draft: Draft) => T): Promise<T> {
    return this.commits.submit(job) as Promise<T>;
  }

  private heard(rec: ServiceRecord): void {
    this.stamp(rec);
    // A record of a group still being written is announced when that group is published.
    if (this.records.get(rec.name) === rec) this.announceHealth(rec);
  }

  /** Runs one group: every job against a draft, one write of the result, then publication. */
  private async commit(jobs: Job[]): Promise<unknown[]> {
    const draft = new Draft(this.records);
    const results = jobs.map((job) => job(draft));
    if (draft.events.length === 0) return results;
    if (this.opts.stateFile) {
      try {
        await this.opts.stateFile.write({ index: this.feed.index + draft.events.length, services: draft.records() });
      } catch (err) {
        this.opts.log?.error({ err, changes: draft.events.length }, 'failed to save registry state; the changes were refused and not applied');
        throw err;
      }
    }
    for (const [name, rec] of draft.changes) {
      const old = this.records.get(name);
      if (!rec) {
        this.records.delete(name);
        continue;
      }
      // A heartbeat that arrived during the write refreshed the old object; keep it.
      if (old && old !== rec && old.heardAtMs > rec.heardAtMs) {
        rec.heardAtMs = old.heardAtMs;
        rec.lastHeartbeatMs = old.lastHeartbeatMs;
      }
      this.records.set(name, rec);
    }
    for (const { type, rec } of draft.events) {
      if (type === 'put') this.announcedHealthy.set(rec.name, this.isHealthy(rec));
      else this.announcedHealthy.delete(rec.name);
      this.feed.append(type, this.view(rec));
    }
    return results;
  }

  /** Emits a `health` event if is_healthy flipped; returns the new value, or undefined if unchanged. */
  private announceHealth(rec: ServiceRecord): boolean | undefined {
    const now = this.isHealthy(rec);
    if (this.announcedHealthy.get(rec.name) === now) return undefined;
    this.announcedHealthy.set(rec.name, now);
    this.feed.append('health', this.view(rec));
    return now;
  }
}
