import type { ChangeEvent, ChangeListener, ChangeType } from './change-feed.js';
import type { Registration, ServicePatch, ServiceRecord, ServiceView } from './record.js';
import type { StateFileCounters } from './state-file.js';

/** Result of a watch request: the backlog after `since` (or a reset) and a live subscription. */
export interface WatchResult {
  backlog: ChangeEvent[] | 'reset';
  index: number;
  unsubscribe: () => void;
}

/**
 * What the HTTP layer needs from storage. A mutating call resolves once its change is durable and
 * rejects (StateWriteError for the embedded store) when it could not be made so. The embedded store keeps memory plus a state file; a
 * distributed store (etcd) can implement the same calls, hence every call is asynchronous.
 */
export interface ServiceStore {
  get(name: string): Promise<ServiceRecord | undefined>;
  /** All records plus the change index the snapshot reflects (list, then watch from it, race-free). */
  list(): Promise<{ services: ServiceRecord[]; index: number; epoch: string }>;
  /**
   * The feed position the records stand at: whatever is derived from them is unchanged while it
   * is. `members` changes when the set of names does (not on updates or health flips).
   */
  position(): { index: number; epoch: string; members: number };
  /** Every record by name, without a copy (do not hold across an await). */
  all(): ReadonlyMap<string, ServiceRecord>;
  /** Records, and healthy ones as of the last evaluateHealth() (call it first for now). */
  counts(): { total: number; healthy: number };
  /** counts() per metadata.type ("unknown" when absent), as of the last evaluateHealth(); cheap (no walk). */
  countsByType(): ReadonlyMap<string, { total: number; healthy: number }>;
  /** Change-feed events since start, by type. */
  feedEvents(): Readonly<Record<ChangeType, number>>;
  /** What the state file wrote since start; undefined without one. */
  stateCounters(): StateFileCounters | undefined;
  /** Registers or replaces a record; the heartbeat is set to now. */
  put(reg: Registration): Promise<ServiceRecord>;
  /** Applies a partial update; `heartbeat` also refreshes last_heartbeat. */
  update(name: string, patch: ServicePatch, opts: { heartbeat: boolean }): Promise<ServiceRecord | undefined>;
  /** Heartbeat: refreshes last_heartbeat and optionally sets the status. */
  touch(name: string, status?: string): Promise<ServiceRecord | undefined>;
  delete(name: string): Promise<ServiceRecord | undefined>;
  /** Deletes every record silent for longer than `staleTimeoutMs`; returns them with their silence. */
  expireStale(staleTimeoutMs: number): Promise<Array<{ rec: ServiceRecord; silentMs: number }>>;
  /** `epoch`: the feed's epoch the watcher listed in; another one means a reset (see ChangeFeed). */
  watch(since: number | undefined, listener: ChangeListener, epoch?: string): WatchResult;
  /** Emits `health` events for records whose is_healthy flipped since the last evaluation. */
  evaluateHealth(): void;
  /** is_healthy of a record now (heartbeat-based, §1.3). */
  isHealthy(rec: ServiceRecord): boolean;
  /** isHealthy at one moment, for many records (one clock read). */
  healthNow(): (rec: ServiceRecord) => boolean;
  /** The record as the API returns it. */
  view(rec: ServiceRecord): ServiceView;
  close(): Promise<void>;
}
