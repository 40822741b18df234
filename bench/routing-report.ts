/** Pure computations of `npm run bench:routing`: a rate point's figures, goodput, the target checks, Markdown. */
import { check, percentile, ratio, type Check } from './report.js';
import { allowedOverSlo, type RequestRecord } from './routing-client.js';

const f = (v: number | undefined, digits = 0) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

export interface BackendCounters {
  /** Generation requests received (the mock's /health `requests`). */
  requests: number;
  /** vllm:prefix_cache_queries_total / vllm:prefix_cache_hits_total (prompt tokens). */
  prefixQueries: number;
  prefixHits: number;
}

export interface PointResult {
  rate: number;
  /** Requests of the measured window that were sent. */
  requests: number;
  completed: number;
  errors: number;
  /** Window requests cut off (no first token, or unfinished, when the point ended) or not sent because it was cut short. */
  cutOff: number;
  /** Stopped early: p99 TTFT was certain to miss the SLO. */
  cut: boolean;
  /** TTFT of the window's requests that did not fail; one still waiting counts the time it waited (a lower bound, then `ttftLowerBound`). */
  ttftMeanMs: number;
  ttftP99Ms: number;
  ttftLowerBound: boolean;
  /** Mean over completed requests of (end - first token) / (tokens - 1). */
  itlMeanMs: number;
  /** Prompt tokens found in the engines' prefix caches / looked up, during the point. */
  hitRate: number;
  /** Requests each backend received during the point, in backend order. */
  loads: number[];
  /** Most loaded backend's requests over the mean. */
  loadMaxOverMean: number;
  /** CPU used during the point, in cores (1 = one core busy): every mock, the router, this client. */
  cpu: { mocks: number; busiestMock: number; router: number; client: number; total: number };
  /** The client's largest lag behind its schedule (ms). */
  maxLagMs: number;
  /** p99 TTFT within the SLO, no error, not cut. */
  pass: boolean;
}

/** The figures of one rate point from the client's records and the backends' counter deltas. */
export function pointResult(
  rate: number,
  records: readonly RequestRecord[],
  o: { cut: boolean; maxLagMs: number; sloMs: number; maxTokens: number; endMs: number; before: readonly BackendCounters[]; after: readonly BackendCounters[]; cpu: PointResult['cpu'] },
): PointResult {
  const window = records.filter((r) => r.measured);
  const sent = window.filter((r) => r.sent);
  let lowerBound = false;
  // a failed request has no TTFT: it counts among the errors (and fails the point)
  const ttfts = sent.filter((r) => r.error === undefined).map((r) => {
    if (r.ttftMs !== undefined) return r.ttftMs;
    lowerBound = true;
    return Math.max(0, o.endMs - r.at);
  });
  const errors = sent.filter((r) => r.error !== undefined).length;
  const completed = sent.filter((r) => r.endMs !== undefined && r.status === 200);
  const itls = o.maxTokens > 1 ? completed.map((r) => (r.endMs! - r.ttftMs!) / (o.maxTokens - 1)) : [];
  const sorted = [...ttfts].sort((a, b) => a - b);
  const over = ttfts.filter((t) => t > o.sloMs).length;
  const loads = o.after.map((a, i) => a.requests - (o.before[i]?.requests ?? 0));
  const meanLoad = loads.reduce((s, x) => s + x, 0) / Math.max(1, loads.length);
  const queries = o.after.reduce((s, a, i) => s + a.prefixQueries - (o.before[i]?.prefixQueries ?? 0), 0);
  const hits = o.after.reduce((s, a, i) => s + a.prefixHits - (o.before[i]?.prefixHits ?? 0), 0);
  const mean = (xs: number[]) => (xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length);
  const cutOff = window.length - completed.length - errors;
  return {
    rate,
    requests: sent.length,
    completed: completed.length,
    errors,
    cutOff,
    cut: o.cut,
    ttftMeanMs: mean(ttfts),
    ttftP99Ms: percentile(sorted, 99),
    ttftLowerBound: lowerBound,
    itlMeanMs: mean(itls),
    hitRate: queries > 0 ? hits / queries : NaN,
    loads,
    loadMaxOverMean: meanLoad > 0 ? Math.max(...loads) / meanLoad : NaN,
    cpu: o.cpu,
    maxLagMs: o.maxLagMs,
    pass: !o.cut && errors === 0 && sent.length > 0 && over <= allowedOverSlo(sent.length),
  };
}

/** The highest rate that passed (0 if none): the goodput. */
export function goodput(points: readonly PointResult[]): number {
  let best = 0;
  for (const p of points) if (p.pass && p.rate > best) best = p.rate;
  return best;
}

export interface PolicyRun {
  policy: string;
  /** What the router was started with. */
  routerArgs: string[];
  points: PointResult[];
  goodput: number;
}

export interface WorkloadResult {
  name: string;
  describe: string;
  /** Round robin's capacity in the virtual-time model (req/s), the rates' unit; absent when rates were given. */
  modelCapacity?: number;
  rates: number[];
  runs: PolicyRun[];
}

export interface RoutingReport {
  when: string;
  machine: Record<string, string | number>;
  settings: Record<string, string | number>;
  method: string[];
  workloads: WorkloadResult[];
  checks: Check[];
  durationS: number;
  processes_left: number[];
}

const CACHE_POLICIES = ['cache-aware', 'cache-load'];

function run(w: WorkloadResult | undefined, policy: string): PolicyRun | undefined {
  return w?.runs.find((r) => r.policy === policy);
}

/**
 * A run's capacity as measured: between its goodput (the highest rate sustained) and the next
 * rate it missed; the geometric midpoint, as the rates are a geometric grid (the goodput alone
 * when no higher rate was missed, 0 when none was sustained).
 */
export function capacityEstimate(r: PolicyRun): number {
  if (r.goodput <= 0) return 0;
  const missed = r.points.filter((p) => !p.pass && p.rate > r.goodput).map((p) => p.rate);
  return missed.length === 0 ? r.goodput : Math.sqrt(r.goodput * Math.min(...missed));
}

/** The rate of `rates` nearest to `target` (undefined for no target). */
export function nearestRate(rates: readonly number[], target: number): number | undefined {
  if (!(target > 0) || rates.length === 0) return undefined;
  return rates.reduce((a, b) => (Math.abs(Math.log(b / target)) < Math.abs(Math.log(a / target)) ? b : a));
}

/** The issue's targets, as ratios within this run. */
export function routingChecks(workloads: readonly WorkloadResult[], cores: number): Check[] {
  const checks: Check[] = [];
  const byName = (n: string) => workloads.find((w) => w.name === n);
  for (const name of ['chat', 'docs']) {
    const w = byName(name);
    const rr = run(w, 'round-robin');
    if (!w || !rr) continue;
    const best = Math.max(...CACHE_POLICIES.map((p) => run(w, p)?.goodput ?? NaN).filter(Number.isFinite));
    checks.push(check(`${name}: best cache policy's goodput / round robin's`, ratio(best, rr.goodput), '>=', 1.5, 'x'));
    const rate = nearestRate(w.rates, 0.8 * capacityEstimate(rr));
    const at = (r: PolicyRun | undefined) => r?.points.find((p) => p.rate === rate);
    const rrAt = at(rr);
    const bestTtft = Math.min(...CACHE_POLICIES.map((p) => at(run(w, p))?.ttftMeanMs ?? NaN).filter(Number.isFinite));
    checks.push(check(`${name}: best cache policy's mean TTFT / round robin's at ${rate === undefined ? '-' : rate.toFixed(1)} req/s (~0.8 x round robin's capacity, ${f(capacityEstimate(rr), 1)} req/s)`, ratio(bestTtft, rrAt?.ttftMeanMs), '<=', 0.5, 'x'));
  }
  const random = byName('random');
  const ll = run(random, 'least-load');
  if (random && ll) {
    for (const p of CACHE_POLICIES) {
      const r = run(random, p);
      if (r) checks.push(check(`random: ${p}'s goodput / least-load's`, ratio(r.goodput, ll.goodput), '>=', 0.9, 'x'));
    }
  }
  const hot = byName('hot');
  for (const p of CACHE_POLICIES) {
    const r = run(hot, p);
    if (r) checks.push(check(`hot: ${p}, most loaded backend / mean (worst rate up to its goodput)`, worstLoad(r), '<=', 1.5, 'x'));
  }
  const points = workloads.flatMap((w) => w.runs.flatMap((r) => r.points));
  checks.push(check('errors (all workloads, policies, rates)', points.reduce((n, p) => n + p.errors, 0), '<=', 0));
  const passing = points.filter((p) => p.pass);
  if (passing.length > 0) {
    checks.push(check('CPU of every process together / machine, worst passing point (the engines, not Node, must be the limit)', Math.max(...passing.map((p) => p.cpu.total)) / cores, '<=', 0.5));
    checks.push(check("client's lag behind its schedule, worst passing point", Math.max(...passing.map((p) => p.maxLagMs)), '<=', 20, ' ms'));
  }
  return checks;
}

/** The most loaded backend over the mean, worst over the rates a run sustained (all its rates if none). */
export function worstLoad(r: PolicyRun): number | undefined {
  const pts = r.points.filter((p) => p.rate <= r.goodput && Number.isFinite(p.loadMaxOverMean));
  const use = pts.length > 0 ? pts : r.points.filter((p) => Number.isFinite(p.loadMaxOverMean));
  return use.length === 0 ? undefined : Math.max(...use.map((p) => p.loadMaxOverMean));
}

export function routingMarkdown(r: RoutingReport): string {
  const L: string[] = [];
  L.push(`Measured ${r.when} on ${r.machine.cpu} (${r.machine.cores} cores), Node ${r.machine.node}; ${r.durationS.toFixed(0)} s in all.`);
  L.push(`Settings: ${Object.entries(r.settings).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  for (const m of r.method) L.push(`- ${m}`);
  L.push('');
  L.push('| workload | policy | goodput req/s | vs round robin | mean TTFT ms at ~0.8 x RR capacity | hit rate there | worst load max/mean | errors |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const w of r.workloads) {
    const rr = run(w, 'round-robin');
    const rate = nearestRate(w.rates, 0.8 * (rr ? capacityEstimate(rr) : 0));
    for (const p of w.runs) {
      const at = p.points.find((x) => x.rate === rate);
      L.push(`| ${w.name} | ${p.policy} | ${f(p.goodput, 1)} | ${f(ratio(p.goodput, rr?.goodput), 2)} | ${f(at?.ttftMeanMs)} | ${at ? f(at.hitRate * 100) + '%' : '-'} | ${f(worstLoad(p), 2)} | ${p.points.reduce((n, x) => n + x.errors, 0)} |`);
    }
  }
  for (const w of r.workloads) {
    L.push('');
    L.push(`**${w.name}**: ${w.describe}. Rates: ${w.rates.map((x) => x.toFixed(1)).join(', ')} req/s${w.modelCapacity !== undefined ? ` (round robin's capacity in the virtual-time model: ${w.modelCapacity.toFixed(1)} req/s)` : ''}.`);
    L.push('');
    L.push('| policy | req/s | n | mean TTFT ms | p99 TTFT ms | mean ITL ms | hit rate | load max/mean | errors | CPU cores | SLO |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const p of w.runs) {
      for (const x of p.points) {
        const lb = x.ttftLowerBound ? '>' : '';
        L.push(`| ${p.policy} | ${x.rate.toFixed(1)} | ${x.requests} | ${lb}${f(x.ttftMeanMs)} | ${lb}${f(x.ttftP99Ms)} | ${f(x.itlMeanMs, 1)} | ${f(x.hitRate * 100)}% | ${f(x.loadMaxOverMean, 2)} | ${x.errors} | ${f(x.cpu.total, 2)} | ${x.pass ? 'met' : x.cut ? 'missed (cut short)' : 'missed'} |`);
      }
    }
  }
  L.push('');
  L.push('| target check | value | bound | result |');
  L.push('|---|---:|---|---|');
  for (const c of r.checks) L.push(`| ${c.what} | ${f(c.value, 2)} | ${c.target} | ${c.pass === undefined ? 'not measured' : c.pass ? 'pass' : 'FAIL'} |`);
  return L.join('\n') + '\n';
}
