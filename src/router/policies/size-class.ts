import type { Backend } from '../backend.js';
import type { RequestInfo } from '../request-info.js';
import type { Policy } from './policy.js';

/**
 * Size classes: when some candidates declare `metadata.cache_type`, requests whose message text
 * exceeds the threshold go to "static" backends and the others to "paged" ones (a backend without
 * cache_type counts as "paged"). An empty class falls back to all candidates. The inner policy
 * (affinity included) then chooses inside the class instead of being overridden by it.
 */
export class SizeClassFilter implements Policy {
  readonly name: string;

  constructor(
    private readonly thresholdBytes: number,
    private readonly inner: Policy,
  ) {
    this.name = inner.name;
  }

  select(candidates: readonly Backend[], info: RequestInfo): Backend | undefined {
    let typed = false;
    for (const b of candidates) {
      if (b.hasCacheType) {
        typed = true;
        break;
      }
    }
    if (!typed) return this.inner.select(candidates, info);
    const wanted = info.size > this.thresholdBytes ? 'static' : 'paged';
    const inClass = candidates.filter((b) => b.cacheType === wanted);
    return this.inner.select(inClass.length > 0 ? inClass : candidates, info);
  }

  onBackendsChanged(all: readonly Backend[]): void {
    this.inner.onBackendsChanged?.(all);
  }
}
