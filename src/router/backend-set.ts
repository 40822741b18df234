import { Backend, type BackendOwner, type BackendSpec, type PoolOptions } from './backend.js';
import { ClassPool, insertByName, Member, ModelPool, removeByName } from './backend-pool.js';
import type { ProbeScheduler } from '../common/probe-scheduler.js';
import { IndexedHeap } from './indexed-heap.js';
import type { Policy } from './policies/policy.js';
import type { RequestInfo } from './request-info.js';
import { TrafficStats } from './traffic-stats.js';

/**
 * How long a model whose last backend left still counts as existing: an engine being restarted
 * deregisters and comes back within minutes, and its clients should be told to retry (503), not
 * that the model does not exist (404).
 */
export const MODEL_MEMORY_MS = 10 * 60_000;

/** Whether a model exists here: served now, served until recently, unknown, or not known yet. */
export type ModelPresence = 'served' | 'recent' | 'unknown' | 'undetermined';

export interface BackendSetOptions {
  /** The clock routability is judged by (tests drive it). */
  now?: () => number;
  /** A backend's limit of requests in flight from this process (0: unlimited; see backend-limits.ts). */
  maxConcurrency?: (spec: BackendSpec) => number;
}

/**
 * The router's view of its backends, in a stable order (by name) so that routing never depends on
 * hash-map iteration order, and the index it routes from: per model (and one for requests without
 * a model) the routable backends, split into size-class sub-pools with the policy's state (see
 * backend-pool.ts). Everything is updated one backend at a time: a join or leave costs
 * O(M log K) plus moving list tails (M its models, K their sizes), a routability or load change
 * O(M log K); nothing is rebuilt.
 *
 * Routability (`Backend.routable(now)`) is tracked by the backends' setters; an ejection that ends
 * by time waits in a heap and is ended lazily by the first request routed after it, with that
 * request's clock, so the index always agrees with `routable(now)`.
 */
export class BackendSet implements BackendOwner {
  private readonly byName = new Map<string, Backend>();
  /** All backends by name: updated in place; `all` hands out copies that never change. */
  private readonly ordered: Backend[] = [];
  private snapshot: readonly Backend[] | undefined = [];
  private readonly pools = new Map<string, ModelPool>();
  /**
   * Every backend, for requests that name no model: built by the first such request (O(N) once),
   * so that a fleet whose clients always name a model does not keep an index of N (least-load
   * would otherwise pay O(log N) per load change).
   */
  private readonly anyPool = new ModelPool(undefined);
  private anyPoolBuilt = false;
  /** Models that lost their last backend, with when, oldest first (pruned after MODEL_MEMORY_MS). */
  private readonly goneModels = new Map<string, number>();
  /** Ejected backends whose ejection ends by time, soonest first. */
  private readonly ejections = new IndexedHeap<Backend>(
    (a, b) => a.ejectedUntil < b.ejectedUntil,
    (b) => b.ejectPos,
    (b, i) => (b.ejectPos = i),
  );
  private routableCount = 0;
  private policy: Policy | undefined;
  private readonly clock: () => number;
  private readonly listeners: Array<(all: Backend[]) => void> = [];
  private changeQueued = false;
  private readonly membershipListeners: Array<(backend: Backend, joined: boolean) => void> = [];
  private readonly downListeners: Array<(backend: Backend, reason: string) => void> = [];
  private readonly limitOf: ((spec: BackendSpec) => number) | undefined;
  /** Backends at their limit (0: `saturated` answers at once). */
  private fullCount = 0;
  private roomListener: ((backend: Backend) => void) | undefined;
  /**
   * Whether membership is known: false until discovery has listed the registry once (a router
   * that never reached its registry cannot say that a model does not exist).
   */
  complete = true;
  /** Traffic counters of every backend by name, kept across a backend's leaving and return. */
  readonly traffic = new TrafficStats();

  constructor(
    private readonly poolOptions: PoolOptions,
    opts: BackendSetOptions = {},
  ) {
    this.clock = opts.now ?? Date.now;
    this.limitOf = opts.maxConcurrency;
  }

  /** All backends by name: a copy made on the first read after a change, never changed afterwards. */
  get all(): readonly Backend[] {
    return (this.snapshot ??= this.ordered.slice());
  }

  get size(): number {
    return this.ordered.length;
  }

  get(name: string): Backend | undefined {
    return this.byName.get(name);
  }

  /**
   * Called with the full list after membership or a backend's models changed: once per burst of
   * synchronous changes (a listing of 10,000 makes one call), in a microtask after it.
   */
  onChange(listener: (all: Backend[]) => void): void {
    this.listeners.push(listener);
  }

  /** Called at once for each backend that joins (`true`) or leaves (`false`). */
  onMembership(listener: (backend: Backend, joined: boolean) => void): void {
    this.membershipListeners.push(listener);
  }

  /** Called when a backend is declared dead: removed, or its health check got no answer at all. */
  onDown(listener: (backend: Backend, reason: string) => void): void {
    this.downListeners.push(listener);
  }

  /** Called with each backend that joins (not when one already here changes). */
  onAdded(listener: (backend: Backend) => void): void {
    this.onMembership((backend, joined) => {
      if (joined) listener(backend);
    });
  }

  /**
   * Called when a backend becomes a candidate again with room for a request: below its limit once
   * more, routable again, joined, or its limit raised (the queue of waiting requests listens).
   */
  onRoom(listener: (backend: Backend) => void): void {
    this.roomListener = listener;
  }

  declareDown(backend: Backend, reason: string): void {
    for (const l of this.downListeners) l(backend, reason);
  }

  /** The policy that routes from this set; its per-pool state is built now and kept from then on. */
  setPolicy(policy: Policy): void {
    if (this.policy) for (const b of this.ordered) for (const m of b.members) if (m.attached) this.policy.detach?.(m);
    this.policy = policy;
    for (const b of this.ordered) for (const m of b.members) if (m.attached) policy.attach?.(m);
  }

  upsert(spec: BackendSpec): Backend {
    const existing = this.byName.get(spec.name);
    if (existing) {
      if (!existing.routingChanges(spec)) existing.apply(spec);
      else this.reindex(existing, spec);
      if (this.limitOf !== undefined) this.setLimit(existing, this.limitOf(spec));
      return existing;
    }
    const backend = new Backend(spec, this.poolOptions);
    if (this.limitOf !== undefined) backend.maxConcurrency = this.limitOf(spec);
    backend.traffic = this.traffic.forBackend(spec.name);
    this.byName.set(spec.name, backend);
    insertByName(this.ordered, backend);
    this.snapshot = undefined;
    if (this.anyPoolBuilt) this.addMember(backend, this.anyPool);
    for (const model of backend.modelSet) this.addMember(backend, this.poolFor(model));
    backend.owner = this;
    this.routabilityChanged(backend);
    for (const l of this.membershipListeners) l(backend, true);
    this.changed();
    return backend;
  }

  remove(name: string, reason = 'removed'): Backend | undefined {
    const backend = this.byName.get(name);
    if (!backend) return undefined;
    this.byName.delete(name);
    this.traffic.backendGone(name, this.clock());
    backend.owner = undefined;
    if (backend.full) {
      backend.full = false;
      this.fullCount--;
    }
    this.ejections.remove(backend);
    if (backend.attached) this.detachAll(backend);
    for (const m of backend.members) this.dropMember(m);
    backend.members = [];
    removeByName(this.ordered, backend);
    this.snapshot = undefined;
    for (const l of this.membershipListeners) l(backend, false);
    this.changed();
    this.declareDown(backend, reason);
    void backend.close();
    return backend;
  }

  /** Backends that declare `model` (all backends when no model is known). Not filtered by health. */
  serving(model: string | undefined): readonly Backend[] {
    if (model === undefined) return this.ordered;
    return this.pools.get(model)?.members ?? [];
  }

  /** Whether `model` exists here (see ModelPresence), for choosing between 404 and 503. */
  presence(model: string, now: number): ModelPresence {
    if (this.pools.has(model)) return 'served';
    if (!this.complete) return 'undetermined';
    this.forgetGoneModels(now);
    const gone = this.goneModels.get(model);
    return gone !== undefined && now - gone < MODEL_MEMORY_MS ? 'recent' : 'unknown';
  }

  /**
   * The backend the policy chooses for a request among the routable backends of its model, minus
   * already-tried ones (retries). Cost: the policy's (O(log K) for round robin and least load).
   */
  pick(info: RequestInfo, now: number, exclude?: ReadonlySet<Backend>): Backend | undefined {
    const policy = this.policy;
    if (!policy) return undefined;
    if (this.ejections.size > 0) this.endEjections(now);
    if (info.model === undefined && !this.anyPoolBuilt) this.buildAnyPool();
    const pool = info.model === undefined ? this.anyPool : this.pools.get(info.model);
    if (!pool) return undefined;
    if (exclude === undefined || exclude.size === 0) return policy.select(pool, info);
    // a retry: the tried backends leave the candidates for this one choice
    const off: Member[] = [];
    for (const b of exclude) {
      const m = b.members.find((x) => x.pool === pool);
      if (m?.attached) {
        this.detach(m);
        off.push(m);
      }
    }
    try {
      return policy.select(pool, info);
    } finally {
      for (const m of off) this.attach(m);
    }
  }

  /**
   * Whether a request for `model` (minus `exclude`, its tried backends) would have a candidate but
   * for limits: some routable backend of the model is full. O(1) while no backend is full, else
   * O(K); asked only when `pick` found nothing.
   */
  saturated(model: string | undefined, exclude?: ReadonlySet<Backend>): boolean {
    if (this.fullCount === 0) return false;
    const list = model === undefined ? this.ordered : this.pools.get(model)?.members;
    if (list === undefined) return false;
    for (const b of list) if (b.full && b.attached && !exclude?.has(b)) return true;
    return false;
  }

  /** Changes a backend's limit of requests in flight (0: unlimited); in-flight requests above a lowered limit go on. */
  setLimit(b: Backend, limit: number): void {
    if (limit === b.maxConcurrency) return;
    b.maxConcurrency = limit;
    this.checkFull(b);
  }

  /** Routable candidates for a model, minus already-tried backends: a fresh list, O(K) (tests, tools). */
  candidates(model: string | undefined, now: number, exclude?: ReadonlySet<Backend>): Backend[] {
    const out: Backend[] = [];
    for (const b of this.serving(model)) if (b.routable(now) && !exclude?.has(b)) out.push(b);
    return out;
  }

  /** How many backends are routable at `now`. O(1) (plus ending ejections that are over). */
  countRoutable(now: number): number {
    if (this.ejections.size > 0) this.endEjections(now);
    return this.routableCount;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.ordered.map((b) => b.close()));
  }

  /** BackendOwner: listedHealthy, checkOk or ejectedUntil of a member changed. */
  routabilityChanged(b: Backend): void {
    const now = this.clock();
    if (b.ejectedUntil > now) {
      if (this.ejections.has(b)) this.ejections.update(b);
      else this.ejections.push(b);
    } else {
      this.ejections.remove(b);
    }
    const routable = b.routable(now);
    if (routable && !b.attached) this.attachAll(b);
    else if (!routable && b.attached) this.detachAll(b);
  }

  /** BackendOwner: a member's in-flight count changed. */
  loadChanged(b: Backend): void {
    if (b.maxConcurrency > 0) this.checkFull(b);
    const policy = this.policy;
    if (!policy?.loadChanged || !b.attached) return;
    for (const m of b.members) if (m.attached) policy.loadChanged(m);
  }

  /**
   * A full backend stays routable (health, counts) but leaves the candidates: its members leave the
   * index while it is full and come back when it has room.
   */
  private checkFull(b: Backend): void {
    const full = b.maxConcurrency > 0 && b.inFlight >= b.maxConcurrency;
    if (full === b.full) return;
    b.full = full;
    this.fullCount += full ? 1 : -1;
    if (!b.attached) return;
    if (full) {
      for (const m of b.members) if (m.attached) this.detach(m);
      return;
    }
    for (const m of b.members) if (!m.attached) this.attach(m);
    this.roomListener?.(b);
  }

  private buildAnyPool(): void {
    this.anyPoolBuilt = true;
    for (const b of this.ordered) {
      this.addMember(b, this.anyPool);
      if (b.attached && !b.full) this.attach(b.members[b.members.length - 1]!);
    }
  }

  /** Puts back the backends whose ejection ended by `now`. */
  private endEjections(now: number): void {
    let top: Backend | undefined;
    while ((top = this.ejections.top()) !== undefined && top.ejectedUntil <= now) {
      this.ejections.pop();
      if (!top.attached && top.routable(now)) this.attachAll(top);
    }
  }

  /** A change of weight, models or size class: out of the index, changed, back in. */
  private reindex(b: Backend, spec: BackendSpec): void {
    const wasAttached = b.attached;
    if (wasAttached) this.detachAll(b);
    const modelsBefore = b.modelSet;
    const listBefore = b.models.join('\n');
    b.apply(spec);
    const kept: Member[] = [];
    for (const m of b.members) {
      if (m.pool.model !== undefined && !b.modelSet.has(m.pool.model)) {
        (b.rrCarry ??= new Map()).set(m.pool.model, m.rr);
        this.dropMember(m);
      } else {
        kept.push(m);
        if (m.cls.cacheType !== b.cacheType) {
          this.leaveClass(m.cls);
          m.cls = m.pool.classFor(b.cacheType);
          m.cls.members++;
        }
      }
    }
    b.members = kept;
    for (const model of b.modelSet) if (!modelsBefore.has(model)) this.addMember(b, this.poolFor(model));
    if (wasAttached) this.attachAll(b);
    if (b.models.join('\n') !== listBefore) this.changed();
  }

  private poolFor(model: string): ModelPool {
    let pool = this.pools.get(model);
    if (!pool) {
      pool = new ModelPool(model);
      this.pools.set(model, pool);
      this.goneModels.delete(model);
    }
    return pool;
  }

  private addMember(b: Backend, pool: ModelPool): void {
    const m = new Member(b, pool, pool.classFor(b.cacheType));
    const carried = pool.model !== undefined ? b.rrCarry?.get(pool.model) : undefined;
    if (carried !== undefined) {
      m.rr = carried;
      b.rrCarry!.delete(pool.model!);
    }
    m.cls.members++;
    // the no-model pool's members are `ordered`
    if (pool.model !== undefined) insertByName(pool.members, b);
    b.members.push(m);
  }

  /** Takes a (detached) member out of its pool; a pool left empty is forgotten. */
  private dropMember(m: Member): void {
    const pool = m.pool;
    this.policy?.drop?.(m);
    this.leaveClass(m.cls);
    if (pool.model === undefined) return;
    removeByName(pool.members, m.backend);
    if (pool.members.length > 0) return;
    this.pools.delete(pool.model);
    const now = this.clock();
    this.goneModels.set(pool.model, now);
    this.forgetGoneModels(now);
  }

  private leaveClass(cls: ClassPool): void {
    if (--cls.members === 0) cls.pool.dropClass(cls);
  }

  private forgetGoneModels(now: number): void {
    for (const [model, at] of this.goneModels) {
      if (now - at < MODEL_MEMORY_MS) break;
      this.goneModels.delete(model);
    }
  }

  private attachAll(b: Backend): void {
    b.attached = true;
    this.routableCount++;
    if (b.full) return;
    for (const m of b.members) this.attach(m);
    this.roomListener?.(b);
  }

  private detachAll(b: Backend): void {
    b.attached = false;
    this.routableCount--;
    for (const m of b.members) if (m.attached) this.detach(m);
  }

  private attach(m: Member): void {
    const b = m.backend;
    insertByName(m.pool.list, b);
    insertByName(m.cls.list, b);
    if (b.hasCacheType) m.pool.typedRoutable++;
    m.attached = true;
    this.policy?.attach?.(m);
  }

  private detach(m: Member): void {
    const b = m.backend;
    this.policy?.detach?.(m);
    m.attached = false;
    if (b.hasCacheType) m.pool.typedRoutable--;
    removeByName(m.cls.list, b);
    removeByName(m.pool.list, b);
  }

  /** Membership or models changed: listeners hear of it once the current burst of changes is over. */
  private changed(): void {
    if (this.changeQueued || this.listeners.length === 0) return;
    this.changeQueued = true;
    queueMicrotask(() => {
      this.changeQueued = false;
      const all = this.all as Backend[];
      for (const l of this.listeners) l(all);
    });
  }
}

/**
 * Keeps a prober's targets in step with the set (a backend is probed from when it joins until it
 * is gone) and returns the call that starts probing every backend known by then.
 */
export function probeBackends(backends: BackendSet, scheduler: ProbeScheduler<Backend>): () => void {
  backends.onAdded((b) => scheduler.add(b.name, b));
  // remove() takes a backend out of the set before declaring it down
  backends.onDown((b) => {
    if (backends.get(b.name) !== b) scheduler.remove(b.name, b);
  });
  return () => {
    for (const b of backends.all) scheduler.add(b.name, b);
    scheduler.start();
  };
}
