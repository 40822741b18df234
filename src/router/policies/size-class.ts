import type { Backend } from '../backend.js';
import type { Group } from '../backend-pool.js';
import type { RequestInfo } from '../request-info.js';
import { BranchCounts, forwardHooks, type Policy } from './policy.js';

/**
 * Size classes: when some candidates declare `metadata.cache_type`, requests whose message text
 * exceeds the threshold go to "static" backends and the others to "paged" ones (a backend without
 * cache_type counts as "paged"). An empty class falls back to all candidates. The inner policy
 * (affinity included) then chooses inside the class instead of being overridden by it. The classes
 * are sub-pools of the model's pool, kept as backends come and go: nothing is filtered per request.
 */
export class SizeClassFilter implements Policy {
  readonly name: string;

  constructor(
    private readonly thresholdBytes: number,
    private readonly inner: Policy,
  ) {
    this.name = inner.name;
    forwardHooks(this, inner);
  }

  /** `static`/`paged`: the request went to its size class; `fallback`: its class was empty; `untyped`: no candidate declares a cache type. */
  private readonly branches = new BranchCounts('size-class', ['static', 'paged', 'fallback', 'untyped'] as const);
  private readonly STATIC = this.branches.index('static');
  private readonly PAGED = this.branches.index('paged');
  private readonly FALLBACK = this.branches.index('fallback');
  private readonly UNTYPED = this.branches.index('untyped');

  select(group: Group, info: RequestInfo): Backend | undefined {
    const pool = group.pool;
    if (pool.typedRoutable > 0) {
      const large = info.size > this.thresholdBytes;
      const cls = pool.byClass.get(large ? 'static' : 'paged');
      if (cls !== undefined && cls.list.length > 0) {
        this.branches.inc(large ? this.STATIC : this.PAGED);
        return this.inner.select(cls, info);
      }
      this.branches.inc(this.FALLBACK);
    } else this.branches.inc(this.UNTYPED);
    return this.inner.select(pool, info);
  }

  decisions(report: (policy: string, branch: string, count: number) => void): void {
    this.branches.report(report, this.inner);
  }
}
