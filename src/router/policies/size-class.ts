import type { Backend } from '../backend.js';
import type { Group } from '../backend-pool.js';
import type { RequestInfo } from '../request-info.js';
import { forwardHooks, type Policy } from './policy.js';

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

  select(group: Group, info: RequestInfo): Backend | undefined {
    const pool = group.pool;
    if (pool.typedRoutable > 0) {
      const cls = pool.byClass.get(info.size > this.thresholdBytes ? 'static' : 'paged');
      if (cls !== undefined && cls.list.length > 0) return this.inner.select(cls, info);
    }
    return this.inner.select(pool, info);
  }
}
