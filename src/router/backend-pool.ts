import type { Backend } from './backend.js';
import type { LeastLoadState } from './policies/least-load.js';
import type { Policy } from './policies/policy.js';
import type { PrefixIndex, Tenant } from './prefix-index.js';
import type { RoundRobinState } from './policies/weighted-round-robin.js';

/**
 * The per-model index the router routes from, kept up to date one backend at a time (never rebuilt):
 * a model's pool holds its routable backends in name order, split into size-class sub-pools
 * (`metadata.cache_type`, none counting as "paged"), each with the state its policy keeps
 * (round-robin buckets, least-load heap). A pool or class sub-pool is a `Group` a policy picks from.
 */

/** Candidates a policy chooses among: routable (and not excluded) backends, in name order. */
export interface Group {
  readonly list: readonly Backend[];
  /** The class sub-pools the candidates come from: this one, or every class of the model. */
  readonly classes: readonly ClassPool[];
  readonly pool: ModelPool;
}

/** One backend in one model's pool (a backend serving three models has three, plus the no-model pool's). */
export class Member {
  /** In the routable lists (routable now, and not excluded by the request being routed). */
  attached = false;
  /**
   * Round robin: the backend's current weight for this model while detached (or of weight 0), its
   * offset `current - weight * T` while in a bucket (see weighted-round-robin.ts).
   */
  rr = 0;
  rrPos = -1;
  llPos = -1;
  /** Least load: when it was last chosen (ties go to the longest unchosen). */
  lastPick = 0;
  /** Cache policies: this backend in its model's prefix index (made when first sent a prompt). */
  tenant: Tenant<Member> | undefined = undefined;

  constructor(
    readonly backend: Backend,
    readonly pool: ModelPool,
    public cls: ClassPool,
  ) {}
}

/** A model's backends of one size class. */
export class ClassPool implements Group {
  readonly list: Backend[] = [];
  readonly classes: readonly ClassPool[] = [this];
  /** Members of any routability (the class goes when its last member does). */
  members = 0;
  rr: RoundRobinState | undefined;
  ll: LeastLoadState | undefined;

  constructor(
    readonly pool: ModelPool,
    readonly cacheType: string,
  ) {}
}

/** Every backend that declares one model (or, for `model === undefined`, every backend). */
export class ModelPool implements Group {
  /** All members, in name order, routable or not. */
  readonly members: Backend[] = [];
  /** Routable members, in name order. */
  readonly list: Backend[] = [];
  readonly classes: ClassPool[] = [];
  readonly byClass = new Map<string, ClassPool>();
  /** Routable members that declare a cache_type (size classes apply only when some do). */
  typedRoutable = 0;
  readonly pool: ModelPool = this;
  /** Cache policies: what each backend was sent lately (made by the first request with a prompt). */
  prefix: PrefixIndex<Member> | undefined = undefined;
  /** Per-model policies: the one this model resolved to (resolved once, at its first use). */
  policy: Policy | undefined = undefined;
  /** The per-model policy that resolved `policy` (another one, set later, resolves again). */
  policyOwner: unknown = undefined;

  constructor(readonly model: string | undefined) {}

  classFor(cacheType: string): ClassPool {
    let cls = this.byClass.get(cacheType);
    if (!cls) {
      cls = new ClassPool(this, cacheType);
      this.byClass.set(cacheType, cls);
      this.classes.push(cls);
    }
    return cls;
  }

  dropClass(cls: ClassPool): void {
    this.byClass.delete(cls.cacheType);
    this.classes.splice(this.classes.indexOf(cls), 1);
  }
}

/** Position of `name` in a list sorted by name (where it is, or where it would go). */
function position(list: readonly Backend[], name: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.name < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Inserts into a list sorted by name: a binary search and one move of the tail (none when appending). */
export function insertByName(list: Backend[], b: Backend): void {
  const n = list.length;
  if (n === 0 || list[n - 1]!.name < b.name) list.push(b);
  else list.splice(position(list, b.name), 0, b);
}

export function removeByName(list: Backend[], b: Backend): void {
  const n = list.length;
  if (n > 0 && list[n - 1] === b) {
    list.pop();
    return;
  }
  const i = position(list, b.name);
  if (list[i] === b) list.splice(i, 1);
}
