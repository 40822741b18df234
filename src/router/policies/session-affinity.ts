import { fnv1a, mix32 } from '../../common/hash.js';
import type { Backend } from '../backend.js';
import type { Group } from '../backend-pool.js';
import type { RequestInfo } from '../request-info.js';
import { BranchCounts, forwardHooks, type Policy } from './policy.js';

const TWO_32 = 4294967296;

/**
 * Weighted rendezvous (highest random weight) hashing: each backend scores `-w / ln(u)` with `u`
 * a hash of (key, backend) in (0, 1); the highest score wins. A membership change only moves the
 * keys of the backends that came or went, and no ring needs rebuilding. O(K) per request.
 */
export function rendezvous(candidates: readonly Backend[], key: string): Backend | undefined {
  const keyHash = fnv1a(key);
  let best: Backend | undefined;
  let bestScore = -Infinity;
  for (const b of candidates) {
    if (b.weight <= 0) continue;
    const u = (mix32(keyHash ^ mix32(b.nameHash)) + 0.5) / TWO_32;
    const score = -b.weight / Math.log(u);
    if (score > bestScore) {
      bestScore = score;
      best = b;
    }
  }
  return best ?? candidates[0];
}

/** Requests with a session key stick to one backend (by rendezvous hashing); others go to `inner`. */
export class SessionAffinity implements Policy {
  readonly name: string;

  constructor(private readonly inner: Policy) {
    this.name = inner.name;
    forwardHooks(this, inner);
  }

  /** `hit`: a session key placed the request; `fallback`: none did, the balancing policy chose. */
  private readonly branches = new BranchCounts('session-affinity', ['hit', 'fallback'] as const);
  private readonly HIT = this.branches.index('hit');
  private readonly FALLBACK = this.branches.index('fallback');

  select(group: Group, info: RequestInfo): Backend | undefined {
    if (info.sessionKey !== undefined) {
      this.branches.inc(this.HIT);
      return group.list.length > 1 ? rendezvous(group.list, info.sessionKey) : this.inner.select(group, info);
    }
    this.branches.inc(this.FALLBACK);
    return this.inner.select(group, info);
  }

  decisions(report: (policy: string, branch: string, count: number) => void): void {
    this.branches.report(report, this.inner);
  }
}
