/**
 * Pure computations of `npm run bench:scale`: latency summaries, growth between fleet sizes and its
 * class, target checks, Markdown.
 */
import { readFileSync } from 'node:fs';
import { check, median, percentile, type Check } from './report.js';

export interface Latency {
  count: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

const round = (v: number, digits = 3): number | null => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : null);

export function summarise(values: readonly number[]): Latency {
  const xs = values.filter(Number.isFinite).sort((a, b) => a - b);
  return { count: xs.length, p50_ms: round(percentile(xs, 50)), p99_ms: round(percentile(xs, 99)), max_ms: round(xs.length ? xs[xs.length - 1]! : NaN) };
}

/**
 * Median over whole seconds of CPU spent / operations done in that second: a second that carried a
 * background burst (a probe round) is an outlier the median leaves out, so the figure is the cost
 * of an operation, not of everything else the process did meanwhile.
 */
export function medianPerOp(cpuNsBySecond: ReadonlyMap<number, number>, opsBySecond: ReadonlyMap<number, number>, minOps = 1): number | null {
  const per: number[] = [];
  for (const [s, ns] of cpuNsBySecond) {
    const ops = opsBySecond.get(s) ?? 0;
    if (ops >= minOps) per.push(ns / 1000 / ops);
  }
  return round(median(per), 1);
}

export interface RegistryFigures {
  registrations: { ok: number; errors: number; aborted: boolean; seconds: number | null; cpu_us_per_registration: number | null; first_error?: string };
  heartbeats: Latency & { sent: number; errors: number; skipped: number; cpu_us_per_heartbeat: number | null; cores: number | null; first_error?: string };
  churn: { per_s: number; sent: number; ok: number; errors: number };
  services_get: Latency & { mb: number | null };
  /** /health as a client polling every 20 ms sees it: the whole phase, the burst, and after it. */
  stalls: { all: Latency; burst: Latency; after_burst: Latency; over_250ms: number };
  event_loop_delay_ms: { p50: number; p99: number; max: number } | null;
  disk: {
    source: string;
    window_s: number | null;
    written_mb: number | null;
    final_state_mb: number | null;
    written_per_state: number | null;
    /** Heartbeats only, no changes. */
    quiet_kb_per_s: number | null;
    steady_kb_per_s: number | null;
    steady_kb_per_change: number | null;
  };
  rss_mb: { peak: number | null; end: number | null };
  fds: { peak: number | null; end: number | null };
  /** health_status of every record in the last listing of the phase (the probes' verdicts). */
  probed: Record<string, number>;
}

export interface RouterFigures {
  /** Backends the router should list: the records the registry held. */
  expected: number;
  listed_s: number | null;
  listed: number;
  stats_total: number | null;
  baseline_listed_s: number | null;
  cpu_us_per_request: number | null;
  baseline_cpu_us_per_request: number | null;
  cpu_ratio: number | null;
  /** All CPU of the window (probe rounds included) / requests. */
  gross_cpu_us_per_request: number | null;
  baseline_gross_cpu_us_per_request: number | null;
  /** CPU (cores) with no requests, after the stream: health checks and discovery. */
  idle_cores: number | null;
  baseline_idle_cores: number | null;
  /** (CPU of the stream - idle CPU over the same time) / requests: a request's own cost. */
  net_cpu_us_per_request: number | null;
  baseline_net_cpu_us_per_request: number | null;
  net_cpu_ratio: number | null;
  requests: Latency & { errors: number; skipped: number; first_error?: string };
  baseline_requests: Latency & { errors: number };
  routable_end: number | null;
  rss_mb: { peak: number | null; end: number | null };
  fds: { peak: number | null };
}

export interface SizeResult {
  n: number;
  phases_s: Record<string, number>;
  registry: RegistryFigures | null;
  router: RouterFigures | null;
  fake_backends_cpu_s: Record<string, number | null>;
  notes: string[];
}

export interface Figure {
  key: string;
  label: string;
  get: (s: SizeResult) => number | null | undefined;
  digits?: number;
}

export const FIGURES: Figure[] = [
  { key: 'registration_s', label: 'registration burst (s)', get: (s) => s.registry?.registrations.seconds, digits: 2 },
  { key: 'registration_cpu_us', label: 'registry CPU per registration (µs)', get: (s) => s.registry?.registrations.cpu_us_per_registration, digits: 0 },
  { key: 'heartbeat_p50', label: 'heartbeat p50 (ms)', get: (s) => s.registry?.heartbeats.p50_ms },
  { key: 'heartbeat_p99', label: 'heartbeat p99 (ms)', get: (s) => s.registry?.heartbeats.p99_ms },
  { key: 'heartbeat_cpu_us', label: 'registry CPU per heartbeat (µs, median second, /health poll included)', get: (s) => s.registry?.heartbeats.cpu_us_per_heartbeat, digits: 0 },
  { key: 'registry_cores', label: 'registry CPU during heartbeats (cores)', get: (s) => s.registry?.heartbeats.cores, digits: 2 },
  { key: 'services_p50', label: 'GET /services p50 (ms)', get: (s) => s.registry?.services_get.p50_ms, digits: 1 },
  { key: 'services_p99', label: 'GET /services p99 (ms)', get: (s) => s.registry?.services_get.p99_ms, digits: 1 },
  { key: 'stall_p99', label: '/health poll p99 (ms)', get: (s) => s.registry?.stalls.all.p99_ms, digits: 1 },
  { key: 'stall_max', label: '/health poll max (ms)', get: (s) => s.registry?.stalls.all.max_ms, digits: 0 },
  { key: 'stall_burst_max', label: '/health poll max during the burst (ms)', get: (s) => s.registry?.stalls.burst.max_ms, digits: 0 },
  { key: 'stall_after_max', label: '/health poll max after the burst (ms)', get: (s) => s.registry?.stalls.after_burst.max_ms, digits: 0 },
  { key: 'eld_p99', label: 'event-loop delay p99 (ms, /stats)', get: (s) => s.registry?.event_loop_delay_ms?.p99, digits: 1 },
  { key: 'eld_max', label: 'event-loop delay max (ms, /stats)', get: (s) => s.registry?.event_loop_delay_ms?.max, digits: 0 },
  { key: 'disk_written_mb', label: 'written during burst + window (MB)', get: (s) => s.registry?.disk.written_mb, digits: 1 },
  { key: 'state_mb', label: 'final state on disk, snapshot + journal (MB)', get: (s) => s.registry?.disk.final_state_mb, digits: 2 },
  { key: 'written_per_state', label: 'written / final state (x)', get: (s) => s.registry?.disk.written_per_state, digits: 1 },
  { key: 'quiet_kb_s', label: 'writes without changes (KB/s)', get: (s) => s.registry?.disk.quiet_kb_per_s, digits: 0 },
  { key: 'steady_kb_s', label: 'steady-state writes at the churn rate (KB/s)', get: (s) => s.registry?.disk.steady_kb_per_s, digits: 0 },
  { key: 'kb_per_change', label: 'steady-state KB written per change', get: (s) => s.registry?.disk.steady_kb_per_change, digits: 1 },
  { key: 'registry_rss', label: 'registry RSS peak (MB)', get: (s) => s.registry?.rss_mb.peak, digits: 0 },
  { key: 'registry_fds', label: 'registry open fds peak', get: (s) => s.registry?.fds.peak, digits: 0 },
  { key: 'probed_healthy', label: 'probed healthy at the end', get: (s) => s.registry?.probed.healthy ?? (s.registry ? 0 : undefined), digits: 0 },
  { key: 'router_listed_s', label: 'router: all records listed after its start (s)', get: (s) => s.router?.listed_s, digits: 2 },
  { key: 'router_cpu_us', label: 'router CPU per request (µs, median second)', get: (s) => s.router?.cpu_us_per_request, digits: 0 },
  { key: 'baseline_cpu_us', label: 'baseline router (10 backends) CPU per request (µs)', get: (s) => s.router?.baseline_cpu_us_per_request, digits: 0 },
  { key: 'router_cpu_ratio', label: 'router CPU per request / baseline (x)', get: (s) => s.router?.cpu_ratio, digits: 2 },
  { key: 'router_gross_us', label: 'router CPU per request, all CPU of the window (µs)', get: (s) => s.router?.gross_cpu_us_per_request, digits: 0 },
  { key: 'router_idle_cores', label: 'router CPU without requests (cores: checks, discovery)', get: (s) => s.router?.idle_cores, digits: 3 },
  { key: 'router_net_us', label: 'router CPU per request, idle CPU subtracted (µs)', get: (s) => s.router?.net_cpu_us_per_request, digits: 0 },
  { key: 'baseline_net_us', label: 'baseline router CPU per request, idle subtracted (µs)', get: (s) => s.router?.baseline_net_cpu_us_per_request, digits: 0 },
  { key: 'router_net_ratio', label: 'router / baseline CPU per request, idle subtracted (x)', get: (s) => s.router?.net_cpu_ratio, digits: 2 },
  { key: 'router_p99', label: 'router request p99 (ms)', get: (s) => s.router?.requests.p99_ms, digits: 1 },
  { key: 'router_max', label: 'router request max (ms)', get: (s) => s.router?.requests.max_ms, digits: 0 },
  { key: 'router_errors', label: 'router request errors', get: (s) => (s.router ? s.router.requests.errors : undefined), digits: 0 },
  { key: 'router_routable', label: 'router: routable at the end', get: (s) => s.router?.routable_end, digits: 0 },
  { key: 'router_rss', label: 'router RSS peak (MB)', get: (s) => s.router?.rss_mb.peak, digits: 0 },
  { key: 'router_fds', label: 'router open fds peak', get: (s) => s.router?.fds.peak, digits: 0 },
  { key: 'fake_cpu_registry', label: 'fake backends CPU, registry phase (s)', get: (s) => s.fake_backends_cpu_s.registry, digits: 1 },
  { key: 'fake_cpu_router', label: 'fake backends CPU, router phase (s)', get: (s) => s.fake_backends_cpu_s.router, digits: 1 },
];

export type GrowthClass = 'flat' | 'linear' | 'super-linear';

export interface Growth {
  figure: string;
  from: number;
  to: number;
  ratio: number;
  class: GrowthClass;
}

/**
 * How a figure grows from fleet size `fromN` to `toN`: the exponent e of ratio = (toN/fromN)^e.
 * Below 0.3 it is flat (at most 2x over 10x), up to 1.3 linear, beyond super-linear.
 */
export function classify(ratio: number, fromN: number, toN: number): GrowthClass {
  const e = Math.log(Math.max(ratio, 1e-9)) / Math.log(toN / fromN);
  return e < 0.3 ? 'flat' : e <= 1.3 ? 'linear' : 'super-linear';
}

export function growth(sizes: readonly SizeResult[], figures: readonly Figure[] = FIGURES): Growth[] {
  const out: Growth[] = [];
  const sorted = [...sizes].sort((a, b) => a.n - b.n);
  for (const f of figures) {
    for (let i = 1; i < sorted.length; i++) {
      const [a, b] = [f.get(sorted[i - 1]!), f.get(sorted[i]!)];
      if (a === null || a === undefined || b === null || b === undefined || !(a > 0) || !Number.isFinite(b)) continue;
      const ratio = b / a;
      out.push({ figure: f.key, from: sorted[i - 1]!.n, to: sorted[i]!.n, ratio: Math.round(ratio * 1000) / 1000, class: classify(ratio, sorted[i - 1]!.n, sorted[i]!.n) });
    }
  }
  return out;
}

export interface RoutingRows {
  decisions: Array<{ policy: string; k: number; n: number; ns: number }>;
  membership: Array<{ n: number; join_us: number; leave_us: number; apply_listing_ms: number | null }>;
}

/** The issue's targets, each at the fleet size it names; a size not run leaves its checks unmeasured. */
export function scaleChecks(sizes: readonly SizeResult[], routing: RoutingRows | undefined): Check[] {
  const at = (n: number) => sizes.find((s) => s.n === n);
  const v = (x: number | null | undefined) => (x === null ? undefined : x);
  const s10 = at(10_000);
  const s50 = at(50_000);
  const r10 = s10?.registry;
  const checks: Check[] = [
    check('10k: heartbeat p99', v(r10?.heartbeats.p99_ms), '<=', 20, ' ms'),
    check('10k: GET /services p99', v(r10?.services_get.p99_ms), '<=', 100, ' ms'),
    check('10k: /health poll p99 (burst and probe rounds included)', v(r10?.stalls.all.p99_ms), '<=', 50, ' ms'),
    check('10k: /health poll max', v(r10?.stalls.all.max_ms), '<=', 250, ' ms'),
    check('10k: event-loop delay p99 (/stats)', v(r10?.event_loop_delay_ms?.p99), '<=', 50, ' ms'),
    check('10k: event-loop delay max (/stats)', v(r10?.event_loop_delay_ms?.max), '<=', 250, ' ms'),
    check('10k: bytes written during the burst + window / final state', v(r10?.disk.written_per_state), '<=', 5, 'x'),
    check('50k: /health poll max', v(s50?.registry?.stalls.all.max_ms), '<=', 250, ' ms'),
    check('50k: registry open fds peak below the limit (no exhaustion)', v(s50?.registry?.fds.peak), '<=', fdLimit().soft - 100),
    check('50k: records probed healthy / N', s50?.registry ? (s50.registry.probed.healthy ?? 0) / s50.n : undefined, '>=', 1, 'x'),
    check('10k: router lists all N within (s of its start)', v(s10?.router?.listed_s), '<=', 3, ' s'),
    check('10k: router CPU per request / baseline of 10 backends (idle CPU subtracted)', v(s10?.router?.net_cpu_ratio), '<=', 1.1, 'x'),
    check('10k: router request max (health-check rounds included)', v(s10?.router?.requests.max_ms), '<=', 250, ' ms'),
    check('10k: router routable at the end / records held', s10?.router?.routable_end != null ? s10.router.routable_end / s10.router.expected : undefined, '>=', 1, 'x'),
  ];
  // steady-state writes follow the change rate, not N: KB per change flat from the smallest size to 10k
  const small = [...sizes].sort((a, b) => a.n - b.n)[0];
  const a = small?.registry?.disk.steady_kb_per_change;
  const b = r10?.disk.steady_kb_per_change;
  if (small && small.n < 10_000) checks.push(check(`steady-state bytes per change, 10k / ${small.n}`, a && b ? b / a : undefined, '<=', 2, 'x'));
  if (routing) {
    for (const policy of ['round-robin', 'least-load']) {
      const rows = routing.decisions.filter((d) => d.policy === policy).sort((x, y) => x.k - y.k);
      const [lo, hi] = [rows.find((d) => d.k === 10), rows.find((d) => d.k === 10_000)];
      checks.push(check(`routing decision ${policy}: ns at K=10,000 / K=10 (O(log K))`, lo && hi ? hi.ns / lo.ns : undefined, '<=', 4, 'x'));
    }
    const m10 = routing.membership.find((m) => m.n === 10_000);
    checks.push(check('apply a listing of 10,000 (in-process)', m10?.apply_listing_ms ?? undefined, '<=', 1000, ' ms'));
  }
  return checks;
}

/** The open-files limit the benchmark and its children run under. */
export function fdLimit(): { soft: number; hard: number } {
  try {
    const text = readFileSync('/proc/self/limits', 'latin1');
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
    const num = (s: string | undefined) => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
    return { soft: num(m?.[1]), hard: num(m?.[2]) };
  } catch {
    return { soft: NaN, hard: NaN };
  }
}
export interface ScaleReport {
  when: string;
  machine: Record<string, string | number>;
  settings: Record<string, string | number | boolean>;
  fd_limit: { soft: number; hard: number; note: string };
  sizes: SizeResult[];
  growth: Growth[];
  routing: (RoutingRows & { ran_s: number }) | { skipped: string };
  checks: Check[];
  notes: string[];
  /** Processes this run started that still ran when it wrote the report (none, normally). */
  processes_left: number[];
  ran_s: number;
}

const fmt = (v: number | null | undefined, digits = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 }));
const sizeLabel = (n: number) => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));

export function scaleMarkdown(r: ScaleReport): string {
  const sizes = [...r.sizes].sort((a, b) => a.n - b.n);
  const lines: string[] = [];
  lines.push(`Measured ${r.when} on ${r.machine.cpu} (${r.machine.cores} cores, ${r.machine.memoryGb} GB; load average ${r.machine.loadavg}), Node ${r.machine.node}; ran ${fmt(r.ran_s, 0)} s.`);
  lines.push(`Settings: ${Object.entries(r.settings).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  lines.push(`Open-files limit: ${r.fd_limit.soft} (hard ${r.fd_limit.hard}). ${r.fd_limit.note}`);
  lines.push('');
  const pairs = sizes.slice(1).map((s, i) => [sizes[i]!, s] as const);
  lines.push(`| figure | ${sizes.map((s) => `N = ${s.n.toLocaleString('en-US')}`).join(' | ')} | ${pairs.map(([a, b]) => `${sizeLabel(b.n)} / ${sizeLabel(a.n)}`).join(' | ')} |`);
  lines.push(`|---|${sizes.map(() => '---:').join('|')}|${pairs.map(() => '---').join('|')}${pairs.length ? '|' : ''}`);
  for (const f of FIGURES) {
    const values = sizes.map((s) => f.get(s));
    if (values.every((x) => x === null || x === undefined)) continue;
    const grown = pairs.map(([a, b]) => {
      const g = r.growth.find((x) => x.figure === f.key && x.from === a.n && x.to === b.n);
      return g ? `${fmt(g.ratio, 2)}x ${g.class}` : '-';
    });
    lines.push(`| ${f.label} | ${values.map((x) => fmt(x, f.digits ?? 3)).join(' | ')} | ${grown.join(' | ')} |`);
  }
  lines.push('');
  const phaseNames = [...new Set(sizes.flatMap((s) => Object.keys(s.phases_s)))];
  lines.push(`| N | ${phaseNames.map((p) => `${p} s`).join(' | ')} |`);
  lines.push(`|---:|${phaseNames.map(() => '---:').join('|')}|`);
  for (const s of sizes) lines.push(`| ${s.n.toLocaleString('en-US')} | ${phaseNames.map((p) => fmt(s.phases_s[p], 1)).join(' | ')} |`);
  lines.push('');
  if ('skipped' in r.routing) lines.push(`In-process routing figures (bench/scale-routing.ts): ${r.routing.skipped}.`);
  else {
    lines.push(`In-process routing figures (bench/scale-routing.ts, ${fmt(r.routing.ran_s, 0)} s):`);
    lines.push('');
    lines.push('| policy | K | N | ns per decision |');
    lines.push('|---|---:|---:|---:|');
    for (const d of r.routing.decisions) lines.push(`| ${d.policy} | ${fmt(d.k, 0)} | ${fmt(d.n, 0)} | ${fmt(d.ns, 0)} |`);
    lines.push('');
    lines.push('| N | join µs | leave µs | apply a listing ms |');
    lines.push('|---:|---:|---:|---:|');
    for (const m of r.routing.membership) lines.push(`| ${fmt(m.n, 0)} | ${fmt(m.join_us, 1)} | ${fmt(m.leave_us, 1)} | ${fmt(m.apply_listing_ms, 1)} |`);
  }
  lines.push('');
  lines.push('| target check | value | bound | result |');
  lines.push('|---|---:|---|---|');
  for (const c of r.checks) lines.push(`| ${c.what} | ${fmt(c.value, 3)} | ${c.target} | ${c.pass === undefined ? 'not measured' : c.pass ? 'pass' : 'FAIL'} |`);
  const notes = [...r.notes, ...sizes.flatMap((s) => s.notes.map((n) => `N = ${s.n.toLocaleString('en-US')}: ${n}`))];
  if (notes.length) {
    lines.push('');
    for (const n of notes) lines.push(`- ${n}`);
  }
  return lines.join('\n') + '\n';
}
