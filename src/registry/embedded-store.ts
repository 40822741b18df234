import type { Logger } from '../common/log.js';
import { ChangeFeed, type ChangeListener, type ChangeType } from './change-feed.js';
import { GroupCommit } from './group-commit.js';
import { LivenessClock } from './liveness-clock.js';
import { isHealthy, newRecord, toView, type Registration, type ServicePatch, type ServiceRecord, type ServiceView } from './record.js';
import { HeartbeatOrder } from './heartbeat-order.js';
import { isMassExpiry, SelfPreservation } from './self-preservation.js';
import type { StateFile, StateFileCounters } from './state-file.js';
import { journalEntry } from './state-journal.js';
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
 * A write is one journal line of the group's net changes (state-file.ts), compacted into a new
 * snapshot in the background when the journal outgrows it.
 *
 * Expiry: heartbeats age on the liveness clock (pauses of this process excluded), and
 * self-preservation holds expiry when most records go silent at once (self-preservation.ts).
 * Records are kept in heartbeat order (heartbeat-order.ts), so a health evaluation or a sweep
 * costs the records that went silent, not all of them.
 */
export class EmbeddedStore implements ServiceStore {
  private readonly records = new Map<string, ServiceRecord>();
  private readonly order: HeartbeatOrder;
  /** is_healthy last announced per record (and the type it was counted under), so flips can be emitted as `health` events. */
  private readonly announcedHealthy = new Map<string, { healthy: boolean; type: string }>();
  private healthyCount = 0;
  /** Records and healthy ones per metadata.type, kept with the announcements (metrics read them, O(types)). */
  private readonly byType = new Map<string, { total: number; healthy: number }>();
  /** Counts changes of the set of names (registrations of new names, deletions). */
  private members = 0;
  private feed = new ChangeFeed();
  private readonly now: () => number;
  private readonly clock: LivenessClock;
  private readonly preservation: SelfPreservation;
  private readonly commits = new GroupCommit<Job, unknown>((jobs) => this.commit(jobs));
  private compacting: Promise<void> | undefined;

  constructor(private readonly opts: EmbeddedStoreOptions) {
    this.now = opts.now ?? Date.now;
    // Short stalls of a busy event loop are credited quietly; a real stop is worth a warning.
    const onPause = (ms: number) =>
      opts.log?.[ms >= 1000 ? 'warn' : 'debug']({ paused_ms: Math.round(ms) }, 'registry was not running (paused or blocked); that time does not count against heartbeats');
    this.clock = opts.clock ?? new LivenessClock({ onPause });
    this.preservation = new SelfPreservation(this.clock, opts.heartbeatTimeoutMs, opts.maxHoldMs, opts.log);
    this.order = new HeartbeatOrder(opts.heartbeatTimeoutMs);
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
      this.order.heard(rec);
      this.setAnnounced(rec, this.isHealthy(rec));
    }
    return state.services.length;
  }

  async get(name: string): Promise<ServiceRecord | undefined> {
    return this.records.get(name);
  }

  async list(): Promise<{ services: ServiceRecord[]; index: number; epoch: string }> {
    return { services: [...this.records.values()], index: this.feed.index, epoch: this.feed.epoch };
  }

  position(): { index: number; epoch: string; members: number } {
    return { index: this.feed.index, epoch: this.feed.epoch, members: this.members };
  }

  all(): ReadonlyMap<string, ServiceRecord> {
    return this.records;
  }

  /** Records and healthy records, as of the last health evaluation (run one first for now). */
  counts(): { total: number; healthy: number } {
    return { total: this.records.size, healthy: this.healthyCount };
  }

  /** counts() per metadata.type ("unknown" when absent or not a string). */
  countsByType(): ReadonlyMap<string, { total: number; healthy: number }> {
    return this.byType;
  }

  /** Feed events appended since start, by type. */
  feedEvents(): Readonly<Record<ChangeType, number>> {
    return this.feed.appended;
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
      const expired: Array<{ rec: ServiceRecord; silentMs: number }> = [];
      // Oldest first; a change in this group can only have made a record fresher.
      for (const committed of this.order.silentLongerThan(now, staleTimeoutMs)) {
        const rec = draft.get(committed.name);
        if (!rec) continue;
        const silentMs = now - rec.heardAtMs;
        if (silentMs > staleTimeoutMs) expired.push({ rec, silentMs });
      }
      for (const { rec } of expired) draft.delete(rec);
      if (isMassExpiry(expired.length, this.records.size)) {
        this.opts.log?.warn({ evicting: expired.length, total: this.records.size, reason: this.massReason() }, 'mass eviction: most services silent past the stale timeout at once');
      }
      return expired;
    });
  }

  watch(since: number | undefined, listener: ChangeListener, epoch?: string): WatchResult {
    const backlog = since === undefined ? [] : epoch !== undefined && epoch !== this.feed.epoch ? 'reset' : this.feed.since(since);
    return { backlog, index: this.feed.index, unsubscribe: this.feed.subscribe(listener) };
  }

  /** Announces is_healthy flips by expiry (on a timer, and before reads), after self-preservation had its say. */
  evaluateHealth(): void {
    this.assessExpiry();
    let expired = 0;
    this.order.expire(this.clock.now(), (rec) => {
      if (this.announceHealth(rec) === false && rec.status === 'running') expired++;
    });
    if (isMassExpiry(expired, this.records.size)) {
      this.opts.log?.warn({ unhealthy: expired, total: this.records.size, reason: this.massReason() }, 'mass expiry: most services turned unhealthy at once');
    }
  }

  isHealthy(rec: ServiceRecord): boolean {
    return isHealthy(rec, this.clock.now(), this.opts.heartbeatTimeoutMs);
  }

  healthNow(): (rec: ServiceRecord) => boolean {
    const now = this.clock.now();
    return (rec) => isHealthy(rec, now, this.opts.heartbeatTimeoutMs);
  }

  view(rec: ServiceRecord): ServiceView {
    return toView(rec, this.clock.now(), this.opts.heartbeatTimeoutMs);
  }

  /** What the state file wrote since start (undefined with --no-persist). */
  stateCounters(): StateFileCounters | undefined {
    return this.opts.stateFile?.counters;
  }

  /**
   * Waits for every submitted change to be committed (or to fail), then folds the journal into
   * the snapshot, so a stopped registry leaves one plain file.
   */
  async close(): Promise<void> {
    await this.commits.drain();
    await this.compacting;
    const file = this.opts.stateFile;
    if (file?.hasJournal) {
      try {
        await file.compact(await file.rotate(), [...this.records.values()]);
      } catch (err) {
        this.opts.log?.warn({ err: (err as Error).message }, 'could not fold the state journal into the snapshot at stop; it is replayed at the next start');
      }
    }
    await file?.close();
    this.clock.stop();
  }

  /** Lets self-preservation hold or release the clock before expiry is evaluated. */
  private assessExpiry(): void {
    const before = this.preservation.state;
    // The feed index tells an operator which events came before and after a hold.
    this.preservation.assess(this.order, { feed_index: this.feed.index });
    if (before !== 'holding' && this.preservation.state === 'holding') {
      // The clock now stands where the threshold was crossed, maybe before some records were
      // taken as silent: sort them again and announce any that are healthy again (rare: O(N)).
      this.order.rebuild(this.records.values(), this.clock.now());
      for (const rec of this.records.values()) this.announceHealth(rec);
    }
  }

  private massReason(): string {
    return this.preservation.state === 'spent'
      ? 'silent through a whole self-preservation hold: taken as a real loss'
      : 'not held: the silent share stayed within the self-preservation threshold as they went quiet';
  }

  private stamp(rec: ServiceRecord): void {
    rec.lastHeartbeatMs = this.now();
    rec.heardAtMs = this.order.stampable(this.clock.now());
  }

  private submit<T>(job: (draft: Draft) => T): Promise<T> {
    return this.commits.submit(job) as Promise<T>;
  }

  private heard(rec: ServiceRecord): void {
    this.stamp(rec);
    // A record of a group still being written is placed and announced when that group is published.
    if (this.records.get(rec.name) !== rec) return;
    this.order.heard(rec);
    this.announceHealth(rec);
  }

  /** Runs one group: every job against a draft, one journal append of the result, then publication. */
  private async commit(jobs: Job[]): Promise<unknown[]> {
    const draft = new Draft(this.records);
    const results = jobs.map((job) => job(draft));
    if (draft.events.length === 0) return results;
    const file = this.opts.stateFile;
    if (file) {
      try {
        await file.append(journalEntry(this.feed.index + draft.events.length, draft.changes, this.records));
      } catch (err) {
        this.opts.log?.error({ err, changes: draft.events.length }, 'failed to save registry state; the changes were refused and not applied');
        throw err;
      }
    }
    for (const [name, rec] of draft.changes) this.apply(name, rec);
    for (const { type, rec } of draft.events) {
      if (type === 'put') this.setAnnounced(rec, this.isHealthy(rec));
      else this.setAnnounced(rec, undefined);
      this.feed.append(type, this.view(rec));
    }
    if (file?.wantsCompaction && !this.compacting) await this.startCompaction(file);
    return results;
  }

  /** Publishes one committed change and keeps the heartbeat order. */
  private apply(name: string, rec: ServiceRecord | null): void {
    const old = this.records.get(name);
    if (!rec) {
      if (old) this.members++;
      this.records.delete(name);
      this.order.remove(name);
      return;
    }
    if (!old) this.members++;
    this.records.set(name, rec);
    if (old && old !== rec && old.heardAtMs > rec.heardAtMs) {
      // A heartbeat that arrived during the write refreshed the old object; keep it.
      rec.heardAtMs = old.heardAtMs;
      rec.lastHeartbeatMs = old.lastHeartbeatMs;
      this.order.replace(rec);
    } else if (!old || rec.heardAtMs > old.heardAtMs) {
      // Heard by this change (registration, update): heard as of its publication, at the end.
      rec.heardAtMs = Math.max(rec.heardAtMs, this.order.stampable(this.clock.now()));
      this.order.heard(rec);
    } else {
      this.order.replace(rec);
    }
  }

  /**
   * Moves the journal aside and writes the snapshot of the records as of now in the background;
   * appends go on meanwhile. A failure is retried when the journal next outgrows the snapshot.
   */
  private async startCompaction(file: StateFile): Promise<void> {
    let index: number;
    try {
      index = await file.rotate();
    } catch (err) {
      this.opts.log?.warn({ err: (err as Error).message }, 'could not rotate the state journal; compaction retried later');
      return;
    }
    const services = [...this.records.values()];
    this.compacting = file
      .compact(index, services)
      .catch((err: unknown) => this.opts.log?.warn({ err: (err as Error).message }, 'could not compact the state journal into a snapshot; retried later'))
      .finally(() => (this.compacting = undefined));
  }

  private setAnnounced(rec: ServiceRecord, healthy: boolean | undefined): void {
    const was = this.announcedHealthy.get(rec.name);
    if (was) {
      if (was.healthy) this.healthyCount--;
      const t = this.byType.get(was.type)!;
      t.total--;
      if (was.healthy) t.healthy--;
      if (t.total === 0) this.byType.delete(was.type);
    }
    if (healthy === undefined) this.announcedHealthy.delete(rec.name);
    else {
      const type = typeof rec.metadata.type === 'string' ? rec.metadata.type : 'unknown';
      this.announcedHealthy.set(rec.name, { healthy, type });
      if (healthy) this.healthyCount++;
      let t = this.byType.get(type);
      if (!t) this.byType.set(type, (t = { total: 0, healthy: 0 }));
      t.total++;
      if (healthy) t.healthy++;
    }
  }

  /** Emits a `health` event if is_healthy flipped; returns the new value, or undefined if unchanged. */
  private announceHealth(rec: ServiceRecord): boolean | undefined {
    const now = this.isHealthy(rec);
    if (this.announcedHealthy.get(rec.name)?.healthy === now) return undefined;
    this.setAnnounced(rec, now);
    this.feed.append('health', this.view(rec));
    return now;
  }
}
