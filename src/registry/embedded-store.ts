import { ChangeFeed, type ChangeListener, type ChangeType } from './change-feed.js';
import { isHealthy, newRecord, toView, type Registration, type ServicePatch, type ServiceRecord } from './record.js';
import type { StateFile } from './state-file.js';
import type { ServiceStore, WatchResult } from './store.js';

export interface EmbeddedStoreOptions {
  heartbeatTimeoutMs: number;
  /** Absent with --no-persist: memory only. */
  stateFile?: StateFile;
  now?: () => number;
}

/** Single-process store: records in memory, changes numbered in a feed, state saved to a file. */
export class EmbeddedStore implements ServiceStore {
  private readonly records = new Map<string, ServiceRecord>();
  /** is_healthy last announced per record, so flips can be emitted as `health` events. */
  private readonly announcedHealthy = new Map<string, boolean>();
  private feed = new ChangeFeed();
  private readonly now: () => number;

  constructor(private readonly opts: EmbeddedStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Restores records from the state file (if any). */
  async open(): Promise<number> {
    if (!this.opts.stateFile) return 0;
    const state = await this.opts.stateFile.load(this.now());
    this.feed = new ChangeFeed(state.index);
    for (const rec of state.services) {
      this.records.set(rec.name, rec);
      this.announcedHealthy.set(rec.name, this.healthy(rec));
    }
    return state.services.length;
  }

  async get(name: string): Promise<ServiceRecord | undefined> {
    return this.records.get(name);
  }

  async list(): Promise<{ services: ServiceRecord[]; index: number }> {
    return { services: [...this.records.values()], index: this.feed.index };
  }

  async put(reg: Registration): Promise<ServiceRecord> {
    const rec = newRecord(reg, this.now());
    this.records.set(rec.name, rec);
    this.changed('put', rec);
    return rec;
  }

  async update(name: string, patch: ServicePatch, opts: { heartbeat: boolean }): Promise<ServiceRecord | undefined> {
    const old = this.records.get(name);
    if (!old) return undefined;
    const rec: ServiceRecord = { ...old, ...patch };
    if (opts.heartbeat) rec.lastHeartbeatMs = this.now();
    this.records.set(name, rec);
    // A probe that only confirms the same health_status is not a change worth a feed event.
    const significant = Object.keys(patch).some((k) => JSON.stringify((patch as Record<string, unknown>)[k]) !== JSON.stringify((old as unknown as Record<string, unknown>)[k]));
    if (significant) this.changed('put', rec);
    else this.announceHealth(rec);
    return rec;
  }

  async touch(name: string, status?: string): Promise<ServiceRecord | undefined> {
    const old = this.records.get(name);
    if (!old) return undefined;
    if (status !== undefined && status !== old.status) return this.update(name, { status }, { heartbeat: true });
    old.lastHeartbeatMs = this.now();
    this.announceHealth(old);
    return old;
  }

  async delete(name: string): Promise<ServiceRecord | undefined> {
    const rec = this.records.get(name);
    if (!rec) return undefined;
    this.records.delete(name);
    this.announcedHealthy.delete(name);
    this.feed.append('delete', this.view(rec));
    this.persist();
    return rec;
  }

  watch(since: number | undefined, listener: ChangeListener): WatchResult {
    const backlog = since === undefined ? [] : this.feed.since(since);
    return { backlog, index: this.feed.index, unsubscribe: this.feed.subscribe(listener) };
  }

  evaluateHealth(): void {
    for (const rec of this.records.values()) this.announceHealth(rec);
  }

  async close(): Promise<void> {
    await this.opts.stateFile?.flush();
  }

  private healthy(rec: ServiceRecord): boolean {
    return isHealthy(rec, this.now(), this.opts.heartbeatTimeoutMs);
  }

  private view(rec: ServiceRecord) {
    return toView(rec, this.now(), this.opts.heartbeatTimeoutMs);
  }

  private changed(type: ChangeType, rec: ServiceRecord): void {
    this.announcedHealthy.set(rec.name, this.healthy(rec));
    this.feed.append(type, this.view(rec));
    this.persist();
  }

  private announceHealth(rec: ServiceRecord): void {
    const now = this.healthy(rec);
    if (this.announcedHealthy.get(rec.name) === now) return;
    this.announcedHealthy.set(rec.name, now);
    this.feed.append('health', this.view(rec));
  }

  private persist(): void {
    this.opts.stateFile?.schedule(() => ({ index: this.feed.index, services: [...this.records.values()] }));
  }
}
