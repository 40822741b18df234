import type { Backend } from '../backend.js';
import type { Group, Member, ModelPool } from '../backend-pool.js';
import { DEFAULT_MAX_CHARS, PrefixIndex } from '../prefix-index.js';
import type { RequestInfo } from '../request-info.js';
import { load } from './least-load.js';
import { readParams, type NumberParam, type PolicyParams } from './params.js';
import { BranchCounts, type Policy } from './policy.js';

export const CACHE_AWARE_PARAMS = {
  threshold: { default: 0.3, min: 0, max: 1, help: 'least fraction of the prompt a backend must have been sent for the request to follow it' },
  balance_abs_threshold: { default: 64, min: 0, max: 1e9, help: 'load is unbalanced when the most and least in-flight differ by more than this...' },
  balance_rel_threshold: { default: 1.5, min: 1, max: 1e9, help: '...and the most is more than this times the least' },
  max_chars: { default: DEFAULT_MAX_CHARS, min: 1024, max: 2 ** 31, help: "characters of prompt text remembered per model (the prefix index's limit)" },
} satisfies Record<string, NumberParam>;

/** This backend's member of `pool` (a backend has one per model it serves: a short loop). */
export function memberOf(b: Backend, pool: ModelPool): Member {
  const members = b.members;
  for (let i = 0; i < members.length; i++) if (members[i]!.pool === pool) return members[i]!;
  throw new Error(`backend ${b.name} is not in the pool of ${pool.model}`);
}

/** The members' order on ties: lighter first, then the one chosen longest ago (idle fleets rotate). */
export function lighter(a: Member, b: Member): boolean {
  const la = load(a.backend);
  const lb = load(b.backend);
  return la < lb || (la === lb && a.lastPick < b.lastPick);
}

/** The prefix index of a model, made at its first prompt. */
export function indexOf(pool: ModelPool, maxChars: number): PrefixIndex<Member> {
  return (pool.prefix ??= new PrefixIndex<Member>(maxChars));
}

/** Records that `m` was sent `text` (right after matching it: the walk is reused). */
export function record(index: PrefixIndex<Member>, text: string, m: Member): void {
  index.insert(text, (m.tenant ??= index.addTenant(m)));
}

/** Forgets a member that left its pool. */
export function forget(m: Member): void {
  if (m.tenant !== undefined) m.pool.prefix?.removeTenant(m.tenant);
  m.tenant = undefined;
}

/**
 * Cache-aware routing as the SGLang router does it. The prompt is matched against what each
 * backend was sent lately (prefix-index.ts). If load is unbalanced (the most and least in-flight
 * requests among the candidates differ by more than `balance_abs_threshold` and the most exceeds
 * `balance_rel_threshold` times the least), the least loaded backend takes it (`imbalance`).
 * Otherwise the backend with the longest match takes it when that match covers at least
 * `threshold` of the prompt (`hit`; equal matches: the lighter), else the least loaded one (`miss`:
 * where SGLang takes the backend with the smallest tree, this takes the least loaded, ties to the
 * one chosen longest ago, which spreads new prefixes over an idle fleet just as well and follows
 * load when there is some). Either way the prompt is then recorded for the chosen backend.
 * A request without prompt text goes to the least loaded backend (`no_prompt`).
 * Cost: O(prompt length) for the match and the record, O(K) for the scan of the candidates.
 */
export class CacheAware implements Policy {
  readonly name = 'cache-aware';
  private readonly p: Record<keyof typeof CACHE_AWARE_PARAMS, number>;
  private tick = 0;
  private readonly branches = new BranchCounts('cache-aware', ['hit', 'miss', 'imbalance', 'no_prompt'] as const);
  private readonly HIT = this.branches.index('hit');
  private readonly MISS = this.branches.index('miss');
  private readonly IMBALANCE = this.branches.index('imbalance');
  private readonly NO_PROMPT = this.branches.index('no_prompt');

  constructor(params: PolicyParams = {}, where = 'cache-aware') {
    this.p = readParams(CACHE_AWARE_PARAMS, params, where);
  }

  select(group: Group, info: RequestInfo): Backend | undefined {
    const list = group.list;
    const n = list.length;
    if (n === 0) return undefined;
    const pool = group.pool;
    const text = info.prompt;
    let stamp = -1;
    let index: PrefixIndex<Member> | undefined;
    if (text !== undefined && text.length > 0) {
      index = indexOf(pool, this.p.max_chars);
      stamp = index.matchTenants(text);
    }
    // one pass: the least and most in flight, the least loaded, the longest match
    let least: Member | undefined;
    let best: Member | undefined;
    let bestLen = 0;
    let minIn = Infinity;
    let maxIn = 0;
    for (let i = 0; i < n; i++) {
      const b = list[i]!;
      const m = memberOf(b, pool);
      const inFlight = b.inFlight;
      if (inFlight < minIn) minIn = inFlight;
      if (inFlight > maxIn) maxIn = inFlight;
      if (least === undefined || lighter(m, least)) least = m;
      const t = m.tenant;
      if (t !== undefined && t.stamp === stamp && (t.matched > bestLen || (t.matched === bestLen && bestLen > 0 && lighter(m, best!)))) {
        best = m;
        bestLen = t.matched;
      }
    }
    let chosen: Member;
    if (index === undefined) {
      this.branches.inc(this.NO_PROMPT);
      chosen = least!;
    } else if (maxIn - minIn > this.p.balance_abs_threshold && maxIn > this.p.balance_rel_threshold * minIn) {
      this.branches.inc(this.IMBALANCE);
      chosen = least!;
    } else if (best !== undefined && bestLen / text!.length >= this.p.threshold) {
      this.branches.inc(this.HIT);
      chosen = best;
    } else {
      this.branches.inc(this.MISS);
      chosen = least!;
    }
    chosen.lastPick = ++this.tick;
    if (index !== undefined) record(index, text!, chosen);
    return chosen.backend;
  }

  drop(m: Member): void {
    forget(m);
  }

  wantsPrompt(): boolean {
    return true;
  }

  decisions(report: (policy: string, branch: string, count: number) => void): void {
    this.branches.report(report);
  }
}
