import { LeastLoad } from './least-load.js';
import type { Policy } from './policy.js';
import { PowerOfTwo } from './power-of-two.js';
import { SessionAffinity } from './session-affinity.js';
import { SizeClassFilter } from './size-class.js';
import { WeightedRoundRobin } from './weighted-round-robin.js';

export type { Policy };

/** Balancing policies by name; `round-robin` (per-model weighted) is the compatible default. */
export const POLICIES: Record<string, () => Policy> = {
  'round-robin': () => new WeightedRoundRobin(),
  'least-load': () => new LeastLoad(),
  'power-of-two': () => new PowerOfTwo(),
};

/** The router's policy: size classes, then session affinity, then the named balancing policy. */
export function createPolicy(name: string, opts: { sizeThresholdBytes: number }): Policy {
  const make = POLICIES[name];
  if (!make) throw new Error(`unknown policy '${name}' (expected one of ${Object.keys(POLICIES).join(', ')})`);
  return new SizeClassFilter(opts.sizeThresholdBytes, new SessionAffinity(make()));
}
