/**
 * npm run bench:routing: what routing on prefix cache and load is worth, with real processes on
 * 127.0.0.1. For each workload and policy: N mocks (the realistic engine model, slowed down so
 * this machine's CPU is never the limit: routing-mock.ts) and one router, fresh (cold caches);
 * an open-loop Poisson client at rising request rates around round robin's capacity (from the
 * engine model in virtual time); per rate TTFT, ITL, prefix-cache hit rate, load per backend.
 * Goodput: the highest rate whose p99 TTFT meets the SLO. Writes JSON and Markdown reports.
 */
import { writeFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { NODE_FLAGS } from '../src/common/node-flags.js';
import { ENGINE_PROFILES } from '../src/mock/engine-profiles.js';
import { alive, BenchProcess, cpuSeconds, freePort, waitHttp } from './processes.js';
import { runPoint } from './routing-client.js';
import { modelCapacity, scaleProfile } from './routing-model.js';
import { goodput, pointResult, routingChecks, routingMarkdown, type BackendCounters, type PointResult, type PolicyRun, type RoutingReport, type WorkloadResult } from './routing-report.js';
import { DEFAULT_SHAPE, makeWorkload, poissonArrivals, WORKLOAD_NAMES, type MockAnswers, type WorkloadName } from './routing-workloads.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ROUTER_BIN = join(ROOT, 'dist', 'bin', 'infini-router.js');
const MOCK_JS = join(ROOT, 'dist', 'bench', 'routing-mock.js');

/** The runs: a router policy, and whether the client sends session keys (only the affinity run does). */
const RUNS: Record<string, { policy: string; affinity: boolean }> = {
  'round-robin': { policy: 'round-robin', affinity: false },
  'least-load': { policy: 'least-load', affinity: false },
  'power-of-two': { policy: 'power-of-two', affinity: false },
  // keyed requests go where rendezvous hashing of the key says, whatever the balancing policy
  affinity: { policy: 'least-load', affinity: true },
  'cache-aware': { policy: 'cache-aware', affinity: false },
  'cache-load': { policy: 'cache-load', affinity: false },
};
/**
 * A run as named on the command line: a RUNS name, optionally with policy parameters after `+`
 * (`cache-load+w_load=1+load_scale=4`); `interval=S` polls the engines' /metrics every S seconds;
 * `workers=N` runs the router with N worker processes (each with its own prefix index).
 */
function parseRun(spec: string): { policy: string; affinity: boolean; args: string[] } | undefined {
  const [name, ...params] = spec.split('+');
  const run = RUNS[name!];
  if (!run) return undefined;
  const args = ['--policy', run.policy];
  for (const p of params) {
    const [key, value] = p.split('=');
    if (key === 'interval') args.push('--engine-metrics-interval', value!);
    else if (key === 'workers') args.push('--workers', value!);
    else args.push('--policy-param', p);
  }
  return { ...run, args };
}

/**
 * Rates as multiples of round robin's capacity in the model. The control (random prompts) is
 * judged within 10% of least-load: finer steps around capacity.
 */
const DEFAULT_GRID = '0.5,0.8,1.1,1.5,2,2.7';
const RANDOM_GRID = '0.6,0.8,0.9,1,1.1,1.2,1.35';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    workloads: { type: 'string' },
    policies: { type: 'string' },
    rates: { type: 'string' },
    grid: { type: 'string' },
    backends: { type: 'string', default: '4' },
    'time-scale': { type: 'string', default: '4' },
    'kv-blocks': { type: 'string', default: '1000' },
    'max-tokens': { type: 'string', default: '24' },
    'slo-ms': { type: 'string' },
    window: { type: 'string' },
    warm: { type: 'string' },
    seed: { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(`npm run bench:routing -- [--quick] [--out DIR] [--workloads chat,docs,random,hot] [--policies LIST]
                         [--rates R1,R2,... (req/s) | --grid F1,F2,... (multiples of round robin's modelled capacity: ${DEFAULT_GRID}; random ${RANDOM_GRID})]
                         [--backends N (4)] [--time-scale S (4)] [--kv-blocks N (1000)] [--max-tokens N (24)]
                         [--slo-ms MS (250 x S)] [--window S (5)] [--warm S (1)] [--seed N (1)]
Policies: ${Object.keys(RUNS).join(', ')}; parameters after + (cache-load+w_load=1, cache-load+interval=1 to poll
the engines' /metrics every second, cache-aware+workers=2 for a router of two worker processes). --quick: the chat workload, two rates, round-robin and cache-aware.
Writes DIR/routing-latest.{json,md}.
`);
  process.exit(0);
}

const quick = opts.quick;
const S = Number(opts['time-scale']);
const backends = Number(opts.backends);
const kvBlocks = Number(opts['kv-blocks']);
const maxTokens = Number(opts['max-tokens']);
const sloMs = opts['slo-ms'] !== undefined ? Number(opts['slo-ms']) : 250 * S;
const windowMs = 1000 * Number(opts.window ?? (quick ? 3 : 5));
const warmMs = 1000 * Number(opts.warm ?? (quick ? 0.5 : 1));
/** The first point of a run starts from cold caches: a longer warm-up. */
const firstWarmMs = quick ? warmMs : 3000;
/** Requests of the window may take this long after its end to finish (beyond: cut off, no ITL). */
const graceMs = 3 * sloMs;
const seed = Number(opts.seed);
const workloadNames = (opts.workloads ?? (quick ? 'chat' : WORKLOAD_NAMES.join(','))).split(',') as WorkloadName[];
for (const w of workloadNames) if (!WORKLOAD_NAMES.includes(w)) throw new Error(`unknown workload ${w}`);
const answers: MockAnswers = { seed: 0, name: 'engine', model: 'm', outputTokens: 64, maxTokens };
const profile = { ...scaleProfile(ENGINE_PROFILES['h100-8b'], S), kvBlocks, cacheBlocks: kvBlocks };

function policiesFor(w: WorkloadName): string[] {
  if (opts.policies) return opts.policies.split(',');
  if (quick) return ['round-robin', 'cache-aware'];
  // on random prompts every key is new: affinity is a random assignment, not worth a run
  return Object.keys(RUNS).filter((p) => !(w === 'random' && p === 'affinity'));
}
for (const w of workloadNames) for (const p of policiesFor(w)) if (!parseRun(p)) throw new Error(`unknown policy ${p}`);

const work = mkdtempSync(join(tmpdir(), 'infini-routing-'));
const live = new Set<BenchProcess>();
const startedPids: number[] = [];
const cleanup = async () => {
  await Promise.all([...live].map((p) => p.stop()));
  live.clear();
  rmSync(work, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().then(() => process.exit(130)));

function spawnTracked(cmd: string, args: string[]): BenchProcess {
  const p = new BenchProcess(cmd, args);
  live.add(p);
  startedPids.push(p.pid);
  return p;
}

async function stopAll(ps: BenchProcess[]): Promise<void> {
  await Promise.all(ps.map((p) => p.stop()));
  for (const p of ps) live.delete(p);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A mock's counters: /health's requests, /metrics' prefix-cache counters and queue gauges. */
async function counters(port: number): Promise<BackendCounters & { busy: number }> {
  const [health, metrics] = await Promise.all([
    fetch(`http://127.0.0.1:${port}/health`).then((r) => r.json() as Promise<{ requests: number }>),
    fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()),
  ]);
  const value = (name: string) => {
    const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(metrics);
    return m ? Number(m[1]) : NaN;
  };
  return {
    requests: health.requests,
    prefixQueries: value('vllm:prefix_cache_queries_total'),
    prefixHits: value('vllm:prefix_cache_hits_total'),
    busy: value('vllm:num_requests_running') + value('vllm:num_requests_waiting'),
  };
}

/** Waits (up to 15 s) until no engine runs or queues anything: the next point starts from idle engines. */
async function drained(ports: number[]): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const c = await Promise.all(ports.map(counters));
    if (c.every((x) => x.busy === 0)) return;
    await sleep(50);
  }
  process.stderr.write('warning: engines still busy 15 s after a point\n');
}

/** Starts the mocks and a router with `policy`; resolves once every backend is routable. */
async function startFleet(policyArgs: string[]): Promise<{ ports: number[]; routerPort: number; procs: BenchProcess[] }> {
  const ports = await Promise.all(Array.from({ length: backends }, () => freePort()));
  const procs = ports.map((port) =>
    spawnTracked(process.execPath, [...NODE_FLAGS, MOCK_JS, '--port', String(port), '--time-scale', String(S), '--kv-blocks', String(kvBlocks), '--output-tokens', String(answers.outputTokens), '--name', answers.name, '--seed', String(answers.seed)]),
  );
  await Promise.all(ports.map((p) => waitHttp(`http://127.0.0.1:${p}/health`)));
  const staticFile = join(work, `static-${ports[0]}.json`);
  writeFileSync(staticFile, JSON.stringify({ services: ports.map((port, i) => ({ name: `b${i}`, host: '127.0.0.1', port, metadata: { models: ['m'] } })) }));
  const routerPort = await freePort();
  procs.push(spawnTracked(ROUTER_BIN, ['--router-port', String(routerPort), '--host', '127.0.0.1', '--static-services', staticFile, '--log-level', 'warn', ...policyArgs]));
  await waitHttp(`http://127.0.0.1:${routerPort}/health`);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const text = await fetch(`http://127.0.0.1:${routerPort}/metrics`).then((r) => r.text());
    if ((text.match(/^infini_router_backend_routable\{[^}]*\} 1$/gm) ?? []).length >= backends) break;
    if (Date.now() > deadline) throw new Error('backends not routable after 15 s');
    await sleep(50);
  }
  return { ports, routerPort, procs };
}

async function runPolicy(w: WorkloadName, name: string, rates: number[]): Promise<PolicyRun> {
  const { args, affinity } = parseRun(name)!;
  const fleet = await startFleet(args);
  const pool = new Pool(`http://127.0.0.1:${fleet.routerPort}`, { connections: 4096, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
  const workload = makeWorkload(w, seed, DEFAULT_SHAPE, answers);
  const points: PointResult[] = [];
  let failures = 0;
  try {
    for (let i = 0; i < rates.length && failures < 2; i++) {
      const rate = rates[i]!;
      const warm = i === 0 ? firstWarmMs : warmMs;
      const arrivals = poissonArrivals(rate, warm + windowMs, seed * 1000 + i);
      const reqs = arrivals.map(() => workload.next());
      const bodies = reqs.map((r) => JSON.stringify({ model: 'm', messages: r.messages, max_tokens: maxTokens, stream: true, ...(affinity ? { prompt_cache_key: r.key } : {}) }));
      let before: Promise<BackendCounters[]> | undefined;
      let cpu0: number[] = [];
      let client0 = process.cpuUsage();
      let t0 = 0;
      const pids = fleet.procs.map((p) => p.pid);
      const res = await runPoint(pool, '/v1/chat/completions', {
        arrivals,
        bodies,
        warmMs: warm,
        windowMs,
        graceMs,
        sloMs,
        onWindowStart: () => {
          before = Promise.all(fleet.ports.map(counters));
          cpu0 = pids.map(cpuSeconds);
          client0 = process.cpuUsage();
          t0 = performance.now();
        },
      });
      const wallS = (performance.now() - t0) / 1000;
      const cpuCores = pids.map((p, k) => (cpuSeconds(p) - cpu0[k]!) / wallS);
      const client = process.cpuUsage(client0);
      await drained(fleet.ports);
      const after = await Promise.all(fleet.ports.map(counters));
      const mocks = cpuCores.slice(0, backends);
      const clientCores = (client.user + client.system) / 1e6 / wallS;
      const cpu = { mocks: mocks.reduce((a, b) => a + b, 0), busiestMock: Math.max(...mocks), router: cpuCores[backends]!, client: clientCores, total: 0 };
      cpu.total = cpu.mocks + cpu.router + cpu.client;
      const p = pointResult(rate, res.records, { cut: res.cut, maxLagMs: res.maxLagMs, sloMs, maxTokens, endMs: res.endMs, before: (await before) ?? after, after, cpu });
      points.push(p);
      failures = p.pass ? 0 : failures + 1;
      process.stderr.write(
        `${w} ${name} ${rate.toFixed(1)} req/s: n ${p.requests} TTFT mean ${p.ttftMeanMs.toFixed(0)} p99 ${p.ttftP99Ms.toFixed(0)} ms, ITL ${p.itlMeanMs.toFixed(1)} ms, hit ${(p.hitRate * 100).toFixed(0)}%, load max/mean ${p.loadMaxOverMean.toFixed(2)}, errors ${p.errors}, CPU ${cpu.total.toFixed(2)} cores${p.pass ? '' : p.cut ? ' MISSED (cut)' : ' MISSED'}\n`,
      );
    }
  } finally {
    await pool.destroy();
    await stopAll(fleet.procs);
  }
  return { policy: name, routerArgs: [...args, ...(affinity ? ['(client sends prompt_cache_key)'] : [])], points, goodput: goodput(points) };
}

async function main(): Promise<void> {
  const started = performance.now();
  const workloads: WorkloadResult[] = [];
  for (const w of workloadNames) {
    let rates: number[];
    let capacity: number | undefined;
    if (opts.rates) rates = opts.rates.split(',').map(Number);
    else if (quick) rates = [4, 12];
    else {
      // round robin's capacity in the engine model, in virtual time: the rates' unit
      capacity = modelCapacity(() => makeWorkload(w, seed, DEFAULT_SHAPE, answers), { profile, engines: backends, durationMs: 15_000, warmMs: 4000, answers, seed, routing: 'round-robin' }, sloMs, 10);
      rates = (opts.grid ?? (w === 'random' ? RANDOM_GRID : DEFAULT_GRID)).split(',').map((g) => Math.round(Number(g) * capacity! * 10) / 10);
      process.stderr.write(`${w}: round robin's modelled capacity ${capacity.toFixed(1)} req/s; rates ${rates.join(', ')}\n`);
    }
    const result: WorkloadResult = { name: w, describe: makeWorkload(w, seed, DEFAULT_SHAPE, answers).describe, ...(capacity !== undefined ? { modelCapacity: capacity } : {}), rates, runs: [] };
    for (const p of policiesFor(w)) result.runs.push(await runPolicy(w, p, rates));
    workloads.push(result);
  }
  const cores = cpus().length;
  const report: RoutingReport = {
    when: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    machine: { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores, node: process.version },
    settings: {
      backends,
      engine: `h100-8b x${S} slower`,
      'kv blocks per engine': `${kvBlocks} of 16 tokens`,
      'max tokens': maxTokens,
      'SLO p99 TTFT': `${sloMs} ms`,
      'window': `${windowMs / 1000} s`,
      seed,
    },
    method: [
      `Engines: the mock's realistic profile (h100-8b: step 5 ms + 0.035 ms a prefill token + 0.04 ms a decoding sequence, 8192 tokens a step, vLLM's scheduler) slowed down ${S}x, so a request's cost is engine time, not Node's; ${kvBlocks} KV blocks of 16 tokens per engine (the prefix cache is their free part), scaled down with the workloads so their shared prefixes exceed one engine's cache but fit in the fleet's.`,
      `Open-loop Poisson arrivals, the same requests and times for every policy; each policy starts on fresh engines; a rate's first ${warmMs / 1000} s (${firstWarmMs / 1000} s at the first rate) are not measured, then ${windowMs / 1000} s are; TTFT is timed from the scheduled arrival. A rate is sustained when p99 TTFT <= ${sloMs} ms (250 ms at H100 speed) with no error; a run stops after two rates missed, and a rate is cut short once its p99 cannot meet the SLO.`,
      'Hit rate: prompt tokens found in the engines\' prefix caches over those looked up (vllm:prefix_cache_hits_total / queries_total). Load: requests each backend received. Only the affinity run sends session keys (prompt_cache_key: the session, document or prefix).',
    ],
    workloads,
    checks: routingChecks(workloads, cores),
    durationS: (performance.now() - started) / 1000,
    processes_left: [],
  };
  await cleanup();
  report.processes_left = startedPids.filter(alive);
  mkdirSync(opts.out!, { recursive: true });
  writeFileSync(join(opts.out!, 'routing-latest.json'), JSON.stringify(report, null, 2));
  const md = routingMarkdown(report);
  writeFileSync(join(opts.out!, 'routing-latest.md'), md);
  process.stdout.write(md);
}

main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
