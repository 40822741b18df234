import type { Backend } from '../backend.js';
import type { Group, Member } from '../backend-pool.js';
import { DEFAULT_MAX_CHARS, type PrefixIndex } from '../prefix-index.js';
import type { RequestInfo } from '../request-info.js';
import { forget, indexOf, lighter, memberOf, record } from './cache-aware.js';
import { readParams, type NumberParam, type PolicyParams } from './params.js';
import { BranchCounts, type Policy } from './policy.js';

/**
 * Defaults measured by `npm run bench:routing` (4 engines, 2026-12-02): w_load 1 rather than 2.
 * At 2 a difference of half the busiest backend's in-flight count outweighed a full prefix match,
 * so sessions and documents left their cached engine at ordinary load (chat: 87% prefix-cache
 * hits against cache-aware's 94%, goodput 55 req/s); at 1 chat keeps 93% and met the SLO at every
 * rate tried (99 req/s, 2.5x round robin), and the hot prefix still spreads (busiest backend
 * <= 1.41x the mean load, p99 TTFT 58-116 ms where w_load 2 had ~250 ms).
 */
export const CACHE_LOAD_PARAMS = {
  w_prefix: { default: 1, min: 0, max: 1e6, help: 'weight of the prefix match (fraction of the prompt a backend was sent)' },
  w_load: { default: 1, min: 0, max: 1e6, help: "weight of the router's in-flight requests to the backend, normalized" },
  w_queue: { default: 1, min: 0, max: 1e6, help: "weight of the engine's waiting requests, normalized (needs --engine-metrics-interval)" },
  w_kv: { default: 0.5, min: 0, max: 1e6, help: "weight of the engine's KV cache usage, 0..1 (needs --engine-metrics-interval)" },
  load_scale: { default: 8, min: 1, max: 1e9, help: 'in-flight requests are normalized by the most among the candidates, or this if more' },
  queue_scale: { default: 8, min: 1, max: 1e9, help: 'waiting requests are normalized by the most among the candidates, or this if more' },
  max_chars: { default: DEFAULT_MAX_CHARS, min: 1024, max: 2 ** 31, help: "characters of prompt text remembered per model (the prefix index's limit)" },
} satisfies Record<string, NumberParam>;

/** Where engine snapshots come from: how old one may be to count (absent: no engine signals). */
export interface EngineFreshness {
  staleMs: number;
}

/**
 * A score per candidate, the highest wins (ties: the lighter, then the one chosen longest ago):
 *
 *   w_prefix * match - w_load * inFlight / max(most inFlight, load_scale)
 *     - w_queue * waiting / max(most waiting, queue_scale) - w_kv * kvUsage
 *
 * `match` is the fraction of the prompt the backend was sent lately (prefix-index.ts, as
 * cache-aware), `inFlight` the router's own count, `waiting` and `kvUsage` the engine's gauges from
 * its /metrics (engine-signals.ts; when not polled, or older than three intervals, they count 0).
 * The scales keep a difference of one or two requests on an idle fleet from outweighing a cached
 * prefix, while the busiest backend loses even a near-full match to one with next to nothing in
 * flight (w_load = w_prefix): a hot prefix does not pile onto one engine, and once it spreads, the
 * backends holding it share it by load. The prompt is then recorded for the chosen backend.
 * Branches: `prefix` (the winner had the longest match, > 0), `load` (another won on load), and
 * `no_prompt`. Cost: O(prompt length) + O(K).
 */
export class CacheLoad implements Policy {
  readonly name = 'cache-load';
  private readonly p: Record<keyof typeof CACHE_LOAD_PARAMS, number>;
  private tick = 0;
  private readonly branches = new BranchCounts('cache-load', ['prefix', 'load', 'no_prompt'] as const);
  private readonly PREFIX = this.branches.index('prefix');
  private readonly LOAD = this.branches.index('load');
  private readonly NO_PROMPT = this.branches.index('no_prompt');

  constructor(
    params: PolicyParams = {},
    where = 'cache-load',
    /** Engine signals, when polled; read at select time (set after the policy is built). */
    private readonly engine: { current: EngineFreshness | undefined } = { current: undefined },
    private readonly now: () => number = Date.now,
  ) {
    this.p = readParams(CACHE_LOAD_PARAMS, params, where);
    this.scoresEngine = this.p.w_queue > 0 || this.p.w_kv > 0;
  }

  private readonly scoresEngine: boolean;

  usesEngineSignals(): boolean {
    return this.scoresEngine;
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
    const engine = this.scoresEngine ? this.engine.current : undefined;
    const freshFrom = engine !== undefined ? this.now() - engine.staleMs : Infinity;
    // the scales first: the most in flight and waiting among the candidates
    let maxIn = this.p.load_scale;
    let maxWaiting = this.p.queue_scale;
    for (let i = 0; i < n; i++) {
      const b = list[i]!;
      if (b.inFlight > maxIn) maxIn = b.inFlight;
      const e = b.engine;
      if (e !== undefined && e.at >= freshFrom && e.waiting > maxWaiting) maxWaiting = e.waiting;
    }
    const len = text?.length ?? 1;
    let best: Member | undefined;
    let bestScore = -Infinity;
    let bestMatch = 0;
    let longest = 0;
    for (let i = 0; i < n; i++) {
      const b = list[i]!;
      const m = memberOf(b, pool);
      const t = m.tenant;
      const matched = t !== undefined && t.stamp === stamp ? t.matched : 0;
      if (matched > longest) longest = matched;
      let score = (this.p.w_prefix * matched) / len - (this.p.w_load * b.inFlight) / maxIn;
      const e = b.engine;
      if (e !== undefined && e.at >= freshFrom) score -= (this.p.w_queue * e.waiting) / maxWaiting + this.p.w_kv * e.kvUsage;
      if (score > bestScore || (score === bestScore && lighter(m, best!))) {
        best = m;
        bestScore = score;
        bestMatch = matched;
      }
    }
    const chosen = best!;
    this.branches.inc(index === undefined ? this.NO_PROMPT : bestMatch > 0 && bestMatch === longest ? this.PREFIX : this.LOAD);
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
