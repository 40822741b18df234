import type { Backend } from '../backend.js';
import type { RequestInfo } from '../request-info.js';
import type { Policy } from './policy.js';

/** In-flight requests per unit of weight: the load a policy compares. */
export function load(b: Backend): number {
  return b.inFlight / Math.max(b.weight, 1e-9);
}

/** Fewest in-flight requests (per unit of weight); ties rotate so idle fleets still spread load. */
export class LeastLoad implements Policy {
  readonly name = 'least-load';
  private tick = 0;

  select(candidates: readonly Backend[], _info: RequestInfo): Backend | undefined {
    const n = candidates.length;
    if (n <= 1) return candidates[0];
    const start = this.tick++ % n;
    let best = candidates[start]!;
    let bestLoad = load(best);
    for (let k = 1; k < n; k++) {
      const b = candidates[(start + k) % n]!;
      const l = load(b);
      if (l < bestLoad) {
        best = b;
        bestLoad = l;
      }
    }
    return best;
  }
}
