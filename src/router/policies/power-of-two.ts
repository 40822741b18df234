import type { Backend } from '../backend.js';
import type { Group } from '../backend-pool.js';
import type { RequestInfo } from '../request-info.js';
import { load } from './least-load.js';
import type { Policy } from './policy.js';

/** Power of two choices: sample two distinct candidates at random, take the less loaded one. O(1). */
export class PowerOfTwo implements Policy {
  readonly name = 'power-of-two';

  constructor(private readonly random: () => number = Math.random) {}

  select(group: Group, _info: RequestInfo): Backend | undefined {
    const candidates = group.list;
    const n = candidates.length;
    if (n <= 1) return candidates[0];
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = candidates[i]!;
    const b = candidates[j]!;
    return load(b) < load(a) ? b : a;
  }
}
