import { UsageError } from '../../common/command.js';
import { CacheAware } from './cache-aware.js';
import { CacheLoad, type EngineFreshness } from './cache-load.js';
import { LeastLoad } from './least-load.js';
import type { PolicyParams } from './params.js';
import { PerModelPolicy, type ModelRule } from './per-model.js';
import type { Policy } from './policy.js';
import { PowerOfTwo } from './power-of-two.js';
import { SessionAffinity } from './session-affinity.js';
import { SizeClassFilter } from './size-class.js';
import { WeightedRoundRobin } from './weighted-round-robin.js';

export type { Policy };

/** What a policy may be given besides its parameters. */
export interface PolicyContext {
  /** The engine signals' freshness once polling runs (cache-load reads it at select time). */
  engine: { current: EngineFreshness | undefined };
}

const noParams =
  (make: () => Policy) =>
  (params: PolicyParams, where: string): Policy => {
    const keys = Object.keys(params);
    if (keys.length > 0) throw new UsageError(`${where}: this policy takes no parameters (got ${keys.join(', ')})`);
    return make();
  };

/** Balancing policies by name; `round-robin` (per-model weighted) is the compatible default. */
export const POLICIES: Record<string, (params: PolicyParams, where: string, ctx: PolicyContext) => Policy> = {
  'round-robin': noParams(() => new WeightedRoundRobin()),
  'least-load': noParams(() => new LeastLoad()),
  'power-of-two': noParams(() => new PowerOfTwo()),
  'cache-aware': (params, where) => new CacheAware(params, where),
  'cache-load': (params, where, ctx) => new CacheLoad(params, where, ctx.engine),
};

export interface PolicyOptions {
  sizeThresholdBytes: number;
  /** Parameters of the default policy (--policy-param). */
  params?: PolicyParams;
  /** The config file's [policies] table: model name or glob -> { policy, ...parameters }. */
  perModel?: Readonly<Record<string, unknown>>;
  ctx?: PolicyContext;
}

function make(name: string, params: PolicyParams, where: string, ctx: PolicyContext): Policy {
  const factory = POLICIES[name];
  if (!factory) throw new UsageError(`${where}: unknown policy '${name}' (expected one of ${Object.keys(POLICIES).join(', ')})`);
  return factory(params, where, ctx);
}

/** The [policies] table as rules, in the file's order; each entry a table with `policy` and its parameters. */
export function modelRules(table: Readonly<Record<string, unknown>>, ctx: PolicyContext): ModelRule[] {
  const rules: ModelRule[] = [];
  for (const [pattern, entry] of Object.entries(table)) {
    const where = `policies."${pattern}"`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new UsageError(`${where}: expected a table with a 'policy' key`);
    const { policy, ...params } = entry as Record<string, unknown>;
    if (typeof policy !== 'string') throw new UsageError(`${where}: expected 'policy', one of ${Object.keys(POLICIES).join(', ')}`);
    rules.push({ pattern, policy: make(policy, params, where, ctx) });
  }
  return rules;
}

/**
 * The router's policy: size classes, then session affinity, then the balancing policy: the named
 * one, or one per model when the config file has a [policies] section (see per-model.ts).
 */
export function createPolicy(name: string, opts: PolicyOptions): Policy {
  const ctx = opts.ctx ?? { engine: { current: undefined } };
  const fallback = make(name, opts.params ?? {}, `--policy ${name}`, ctx);
  const rules = opts.perModel ? modelRules(opts.perModel, ctx) : [];
  const balancing = rules.length > 0 ? new PerModelPolicy(fallback, rules) : fallback;
  return new SizeClassFilter(opts.sizeThresholdBytes, new SessionAffinity(balancing));
}
