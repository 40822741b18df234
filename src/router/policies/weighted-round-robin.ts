import type { Backend } from '../backend.js';
import type { RequestInfo } from '../request-info.js';
import type { Policy } from './policy.js';

/**
 * Smooth weighted round robin (as nginx does it), with a separate rotation per model so that
 * traffic for one model never skews another's (the original shared one counter). Weight 0 means
 * "never", unless every candidate has weight 0, which falls back to plain rotation.
 */
export class WeightedRoundRobin implements Policy {
  readonly name: string = 'round-robin';
  private readonly current = new Map<string, Map<Backend, number>>();
  private readonly plain = new Map<string, number>();

  select(candidates: readonly Backend[], info: RequestInfo): Backend | undefined {
    const n = candidates.length;
    if (n <= 1) return candidates[0];
    const key = info.model ?? '';
    let weights = this.current.get(key);
    if (!weights) this.current.set(key, (weights = new Map()));
    let total = 0;
    let best: Backend | undefined;
    let bestWeight = -Infinity;
    for (let i = 0; i < n; i++) {
      const b = candidates[i]!;
      if (b.weight <= 0) continue;
      const w = (weights.get(b) ?? 0) + b.weight;
      weights.set(b, w);
      total += b.weight;
      if (w > bestWeight) {
        bestWeight = w;
        best = b;
      }
    }
    if (best) {
      weights.set(best, bestWeight - total);
      return best;
    }
    const i = this.plain.get(key) ?? 0;
    this.plain.set(key, i + 1);
    return candidates[i % n];
  }

  onBackendsChanged(all: readonly Backend[]): void {
    const live = new Set(all);
    for (const weights of this.current.values()) for (const b of weights.keys()) if (!live.has(b)) weights.delete(b);
  }
}
