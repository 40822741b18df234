/** Pure computations of the benchmark report: percentiles, per-round medians, ratios, Markdown. */

export interface RunResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  requests: number;
  /** CPU seconds the proxy process(es) used per request, when measured. */
  cpuPerReqUs?: number;
  /** Peak RSS of the proxy during the run, MB, when measured. */
  rssMb?: number;
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: readonly number[]): number {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  const mid = xs.length >> 1;
  return xs.length % 2 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
}

/** Combines the rounds of one target: medians of each figure, errors summed. */
export function combineRounds(rounds: readonly RunResult[]): RunResult {
  const pick = (f: (r: RunResult) => number | undefined) => median(rounds.map(f).filter((v): v is number => v !== undefined));
  const cpu = pick((r) => r.cpuPerReqUs);
  const rss = pick((r) => r.rssMb);
  return {
    rps: pick((r) => r.rps),
    p50Ms: pick((r) => r.p50Ms),
    p99Ms: pick((r) => r.p99Ms),
    errors: rounds.reduce((n, r) => n + r.errors, 0),
    requests: rounds.reduce((n, r) => n + r.requests, 0),
    ...(Number.isFinite(cpu) ? { cpuPerReqUs: cpu } : {}),
    ...(Number.isFinite(rss) ? { rssMb: rss } : {}),
  };
}

/** a / b, or undefined when either side is missing. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined;
  return a / b;
}

export interface Scenario {
  name: string;
  targets: Record<string, RunResult>;
}

export interface Check {
  what: string;
  value: number | undefined;
  target: string;
  pass: boolean | undefined;
}

export interface BenchReport {
  when: string;
  machine: Record<string, string | number>;
  settings: Record<string, string | number>;
  scenarios: Scenario[];
  addedLatencyMs: { lowLoad?: number; saturation?: number };
  memoryMb: Record<string, number | undefined>;
  streaming: { chunksExpected?: number; chunksSeparate?: number; meanGapMs?: number; itlMs?: number };
  checks: Check[];
}

/** A target check: `value` compared with a bound; undefined when not measured in this run. */
export function check(what: string, value: number | undefined, op: '>=' | '<=', bound: number, unit = ''): Check {
  const pass = value === undefined ? undefined : op === '>=' ? value >= bound : value <= bound;
  return { what, value, target: `${op} ${bound}${unit}`, pass };
}

const fmt = (v: number | undefined, digits = 2) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

export function toMarkdown(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(`Measured ${r.when} on ${r.machine.cpu} (${r.machine.cores} cores, ${r.machine.memoryGb} GB), Node ${r.machine.node}, ${r.machine.loadgen}${r.machine.nginx ? `, nginx ${r.machine.nginx}` : ''}.`);
  lines.push(`Settings: ${Object.entries(r.settings).map(([k, v]) => `${k} ${v}`).join(', ')}. Figures are medians over interleaved rounds.`);
  lines.push('');
  lines.push('| scenario | target | req/s | p50 ms | p99 ms | errors | CPU µs/req | router/direct | router/nginx |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of r.scenarios) {
    const direct = s.targets.direct;
    for (const [name, t] of Object.entries(s.targets)) {
      // a target over TLS is compared with nginx over TLS
      const nginx = s.targets[name.endsWith(' tls') ? 'nginx tls' : 'nginx'];
      const isRouter = name.startsWith('router');
      lines.push(`| ${s.name} | ${name} | ${fmt(t.rps, 0)} | ${fmt(t.p50Ms, 3)} | ${fmt(t.p99Ms, 3)} | ${t.errors} | ${fmt(t.cpuPerReqUs, 0)} | ${isRouter ? fmt(ratio(t.rps, direct?.rps)) : ''} | ${isRouter ? fmt(ratio(t.rps, nginx?.rps)) : ''} |`);
    }
  }
  lines.push('');
  lines.push(`Latency added by the router (p50): ${fmt(r.addedLatencyMs.lowLoad, 3)} ms at 1 connection, ${fmt(r.addedLatencyMs.saturation, 3)} ms at saturation.`);
  const mem = Object.entries(r.memoryMb).map(([k, v]) => `${k} ${fmt(v, 0)} MB`).join(', ');
  lines.push(`Router RSS: ${mem}.`);
  if (r.streaming.chunksExpected !== undefined) {
    lines.push(`Chunk timing: a stream from a backend writing every ${r.streaming.itlMs} ms arrived in ${r.streaming.chunksSeparate} separate reads through the router (${r.streaming.chunksExpected} reading the backend directly), mean gap ${fmt(r.streaming.meanGapMs)} ms.`);
  }
  lines.push('');
  lines.push('| target check | value | bound | result |');
  lines.push('|---|---:|---|---|');
  for (const c of r.checks) lines.push(`| ${c.what} | ${fmt(c.value, 3)} | ${c.target} | ${c.pass === undefined ? 'not measured' : c.pass ? 'pass' : 'FAIL'} |`);
  return lines.join('\n') + '\n';
}
