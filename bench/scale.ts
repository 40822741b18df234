/**
 * npm run bench:scale: what one registry and one router cost as the fleet grows (issue 15).
 * For each fleet size N, real registry and router processes and a fake fleet: N registrations with
 * their own loopback addresses (127.x.y.z) answered by a few fake backend processes
 * (scale-backend.ts). Phases, each bounded in time:
 *
 * 1. registry: a burst of N registrations (bounded client concurrency), then a heartbeat from every
 *    service every 10 s, in three windows that together cover several probe rounds: A (bytes
 *    written during the burst and A; GET /services polled every second), B (heartbeats alone: CPU
 *    per heartbeat, writes without changes), C (a churn of changes: steady-state writes per
 *    change). Throughout, /health polled every 20 ms (stalls) and /proc read every second (CPU,
 *    RSS, fds, bytes written); /stats read at the edges (event-loop delay, state bytes written).
 * 2. router: started against that registry (heartbeats stopped: records stay healthy for the
 *    heartbeat timeout, longer than this phase); time until it lists all N; then a steady stream of
 *    chat requests over 10 models, and the same stream to a baseline router with 10 backends, for
 *    long enough to cover its start-up check round and the next one: CPU per request, latency.
 * 3. bench/scale-routing.ts (in-process routing figures), when it exists.
 *
 * Growth ratios between sizes are the result. Reports go to bench/results/scale-latest.{json,md};
 * a missed target is reported, not an exit code (errors are).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { request } from 'undici';
import { NODE_FLAGS } from '../src/common/node-flags.js';
import { alive, BenchProcess, freePort, freePortPair, openFiles, rssMb, waitHttp } from './processes.js';
import { cpuNs, writeCounters } from './proc-counters.js';
import { median } from './report.js';
import { spreadModels } from './scale-fleet.js';
import type { BeatResult, LoadOptions, RegisterResult } from './scale-load.js';
import type { PacerOptions, PacerResult } from './scale-pacer.js';
import { fdLimit, growth, medianPerOp, scaleChecks, scaleMarkdown, summarise, type RegistryFigures, type RouterFigures, type RoutingRows, type ScaleReport, type SizeResult } from './scale-report.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const HERE = dirname(fileURLToPath(import.meta.url));

const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string' },
    quick: { type: 'boolean', default: false },
    budget: { type: 'string' },
    concurrency: { type: 'string', default: '256' },
    'disk-window': { type: 'string' },
    'quiet-window': { type: 'string' },
    'churn-window': { type: 'string' },
    'probe-interval': { type: 'string' },
    churn: { type: 'string', default: '10' },
    'router-seconds': { type: 'string' },
    'router-check-interval': { type: 'string' },
    rate: { type: 'string', default: '100' },
    'burst-cap': { type: 'string', default: '180' },
    'listing-cap': { type: 'string', default: '90' },
    routing: { type: 'boolean' },
    // Node 20's parseArgs has no negated booleans
    'no-routing': { type: 'boolean', default: false },
    'routing-listing-max': { type: 'string', default: '10000' },
    'state-dir': { type: 'string', default: tmpdir() },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    readme: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(`npm run bench:scale -- [--sizes 1000,10000,50000] [--quick] [--budget S (480)] [--concurrency N (256)]
        [--disk-window S (20)] [--quiet-window S (10)] [--churn-window S (10)] [--churn PER_S (10)]
        [--probe-interval S (10)]
        [--router-seconds S (35)] [--router-check-interval S (router default)] [--rate REQ_PER_S (100)]
        [--burst-cap S (180)] [--listing-cap S (90)] [--routing | --no-routing] [--routing-listing-max N (10000)]
        [--state-dir DIR] [--out DIR] [--readme]
Simulated fleets against a real registry and router on 127.0.0.0/8; reports per size and growth
ratios to DIR/scale-latest.{json,md}. --quick: small sizes and short phases (a smoke run).
`);
  process.exit(0);
}

const quick = opts.quick;
const num = (v: string | undefined, def: number, quickDef: number) => (v !== undefined ? Number(v) : quick ? quickDef : def);
const S = {
  sizes: (opts.sizes ?? (quick ? '100,300' : '1000,10000,50000')).split(',').map(Number).filter((n) => n > 0).sort((a, b) => a - b),
  budgetS: num(opts.budget, 480, 60),
  concurrency: Number(opts.concurrency),
  diskWindowS: num(opts['disk-window'], 20, 1.5),
  quietWindowS: num(opts['quiet-window'], 10, 2),
  churnWindowS: num(opts['churn-window'], 10, 1.5),
  probeIntervalS: num(opts['probe-interval'], 10, 1),
  churnPerS: Number(opts.churn),
  routerSeconds: num(opts['router-seconds'], 35, 2),
  routerCheckIntervalS: opts['router-check-interval'] !== undefined ? Number(opts['router-check-interval']) : quick ? 1 : undefined,
  rate: Number(opts.rate),
  burstCapS: Number(opts['burst-cap']),
  listingCapS: Number(opts['listing-cap']),
  warmupS: quick ? 0.5 : 2,
  idleS: quick ? 1 : 10,
  routing: opts['no-routing'] ? false : (opts.routing ?? !quick),
};
// Heartbeats stop during the router phase (the router's cost is measured alone): past the registry's
// heartbeat timeout (120 s) the silent records would turn unhealthy under the router's feet.
if (S.routerSeconds + S.idleS + S.warmupS > 100) {
  process.stderr.write(`bench:scale: --router-seconds ${S.routerSeconds}: the router phase (stream, ${S.idleS} s idle) must end within the registry's heartbeat timeout (120 s) of the last heartbeat; at most ${100 - S.idleS - S.warmupS}\n`);
  process.exit(2);
}
const HEARTBEAT_MS = 10_000;
const LOADED_MODELS = 10;

const t0 = Date.now();
const deadline = t0 + S.budgetS * 1000;
const remainingS = () => (deadline - Date.now()) / 1000;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const log = (what: string) => process.stderr.write(`bench:scale ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}\n`);
const round = (v: number | null | undefined, digits = 3): number | null => (v === null || v === undefined || !Number.isFinite(v) ? null : Math.round(v * 10 ** digits) / 10 ** digits);

const work = mkdtempSync(join(opts['state-dir']!, 'infini-scale-'));
const procs = new Set<BenchProcess>();
const startedPids: number[] = [];
const workers = new Set<Worker>();
function start(args: string[]): BenchProcess {
  const p = new BenchProcess(process.execPath, args);
  procs.add(p);
  startedPids.push(p.pid);
  return p;
}
async function stop(p: BenchProcess): Promise<void> {
  await p.stop();
  procs.delete(p);
}
const cleanup = async () => {
  for (const w of workers) void w.terminate();
  await Promise.all([...procs].map((p) => p.stop()));
  rmSync(work, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().then(() => process.exit(130)));

// ---------------------------------------------------------------------------------------------
// workers and samplers

function startWorker<T>(file: string, data: unknown): { worker: Worker; next: () => Promise<T> } {
  const worker = new Worker(join(HERE, file), { workerData: data });
  workers.add(worker);
  worker.once('exit', () => workers.delete(worker));
  let failed: Error | undefined;
  worker.once('error', (err) => (failed = err));
  return {
    worker,
    next: () =>
      new Promise<T>((resolveMsg, reject) => {
        if (failed) return reject(failed);
        const onError = (err: Error) => reject(err);
        worker.once('error', onError);
        worker.once('message', (m: T) => {
          worker.off('error', onError);
          resolveMsg(m);
        });
      }),
  };
}

async function pacer(o: PacerOptions): Promise<() => Promise<PacerResult>> {
  const w = startWorker<PacerResult>('scale-pacer.js', o);
  return async () => {
    const result = w.next();
    w.worker.postMessage({ cmd: 'stop' });
    const r = await result;
    void w.worker.terminate();
    return r;
  };
}

interface Sample {
  t: number;
  cpuNs: number;
  rss: number;
  fds: number;
  writeBytes: number;
  wchar: number;
}

/** /proc counters of some processes, read on every whole second (aligned, for per-second ratios). */
class Sampler {
  readonly samples = new Map<number, Sample[]>();
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly pids: number[]) {}
  start(): this {
    const tick = () => {
      this.sample();
      this.timer = setTimeout(tick, 1000 - (Date.now() % 1000));
    };
    this.timer = setTimeout(tick, 1000 - (Date.now() % 1000));
    this.sample();
    return this;
  }
  sample(): void {
    const t = Date.now();
    for (const pid of this.pids) {
      const io = writeCounters(pid);
      const s: Sample = { t, cpuNs: cpuNs(pid), rss: rssMb(pid), fds: openFiles(pid), writeBytes: io?.writeBytes ?? NaN, wchar: io?.wchar ?? NaN };
      const xs = this.samples.get(pid);
      if (xs) xs.push(s);
      else this.samples.set(pid, [s]);
    }
  }
  stop(): void {
    clearTimeout(this.timer);
    this.sample();
  }
  of(pid: number, from = -Infinity, to = Infinity): Sample[] {
    return (this.samples.get(pid) ?? []).filter((s) => s.t >= from && s.t <= to);
  }
  /** CPU seconds of the pids between two times (first and last samples inside). */
  cpuS(pids: number[], from: number, to: number): number | null {
    let total = 0;
    for (const pid of pids) {
      const span = this.span(pid, from, to);
      if (!span) return null;
      total += span.cpuS;
    }
    return total;
  }
  /** CPU seconds of one pid from its first to its last sample between two times, with their times. */
  span(pid: number, from: number, to: number): { cpuS: number; from: number; to: number } | undefined {
    const xs = this.of(pid, from, to).filter((s) => Number.isFinite(s.cpuNs));
    if (xs.length < 2) return undefined;
    return { cpuS: (xs[xs.length - 1]!.cpuNs - xs[0]!.cpuNs) / 1e9, from: xs[0]!.t, to: xs[xs.length - 1]!.t };
  }
  /** CPU ns per whole epoch second [s, s+1), from samples taken within 100 ms of each boundary. */
  cpuBySecond(pid: number, from: number, to: number): Map<number, number> {
    const bySecond = new Map<number, Sample>();
    for (const s of this.of(pid, from, to)) {
      const sec = Math.round(s.t / 1000);
      if (Math.abs(s.t - sec * 1000) <= 100 && Number.isFinite(s.cpuNs)) bySecond.set(sec, s);
    }
    const out = new Map<number, number>();
    for (const [sec, s] of bySecond) {
      const next = bySecond.get(sec + 1);
      if (next) out.set(sec, next.cpuNs - s.cpuNs);
    }
    return out;
  }
  peak(pid: number, field: 'rss' | 'fds', from = -Infinity, to = Infinity): number | null {
    const xs = this.of(pid, from, to).map((s) => s[field]).filter(Number.isFinite);
    return xs.length ? Math.max(...xs) : null;
  }
  last(pid: number): Sample | undefined {
    const xs = this.samples.get(pid);
    return xs?.[xs.length - 1];
  }
}

async function getJson(url: string, timeoutMs = 60_000): Promise<any> {
  try {
    const res = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const text = await res.body.text();
    return res.statusCode === 200 ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** GET /services once a second (the next one a second after the previous one was sent, or at once if it took longer). */
function pollServices(url: string): () => Promise<{ latencies: number[]; bytes: number[] }> {
  const latencies: number[] = [];
  const bytes: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = now();
      try {
        const res = await request(`${url}/services`, { headersTimeout: 120_000, bodyTimeout: 120_000 });
        let size = 0;
        for await (const chunk of res.body) size += (chunk as Buffer).length;
        latencies.push(now() - at);
        bytes.push(size);
      } catch {
        latencies.push(now() - at);
      }
      await sleep(at + 1000 - now());
    }
  })();
  return async () => {
    running = false;
    await loop;
    return { latencies, bytes };
  };
}

// ---------------------------------------------------------------------------------------------
// the fake fleet

interface Fakes {
  ports: number[];
  procs: BenchProcess[];
}

/**
 * Enough fake backend processes that none of them runs out of descriptors when the registry's and
 * the router's checks of its share of the fleet arrive at once (each answers for N / count).
 */
async function startFakes(maxN: number): Promise<Fakes> {
  const { soft } = fdLimit();
  const count = Number.isFinite(soft) ? Math.max(1, Math.ceil((2 * maxN) / (0.8 * soft))) : 1;
  const ports: number[] = [];
  const ps: BenchProcess[] = [];
  for (let i = 0; i < count; i++) {
    const port = await freePortPair();
    ports.push(port);
    ps.push(start([join(HERE, 'scale-backend.js'), String(port)]));
  }
  await Promise.all(ports.map((p) => waitHttp(`http://127.0.0.1:${p}/health`)));
  return { ports, procs: ps };
}

// ---------------------------------------------------------------------------------------------
// phase 1: the registry

interface RegistryRun {
  url: string;
  proc: BenchProcess;
  figures: RegistryFigures;
  /** Records the registry holds at the end of the phase (N, unless registrations failed). */
  held: number;
}

async function registryPhase(n: number, fakes: Fakes, result: SizeResult): Promise<RegistryRun> {
  const dir = mkdtempSync(join(work, `n${n}-`));
  const statePath = join(dir, 'state.json');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let phaseStart = now();
  const proc = start([...NODE_FLAGS, CLI, 'registry', '--port', String(port), '--host', '127.0.0.1', '--state-file', statePath, '--health-interval', String(S.probeIntervalS), '--log-level', 'warn']);
  await waitHttp(`${url}/health`, 30_000);
  result.phases_s['registry start'] = (now() - phaseStart) / 1000;
  const fakePids = fakes.procs.map((p) => p.pid);
  const sampler = new Sampler([proc.pid, ...fakePids]).start();
  const stopStalls = await pacer({ origin: url, requests: [{ method: 'GET', path: '/health' }], intervalMs: 20, maxOutstanding: 1, connections: 1 });
  const stopServices = pollServices(url);
  const load = startWorker<RegisterResult | BeatResult>('scale-load.js', { registryUrl: url, n, ports: fakes.ports, concurrency: S.concurrency, heartbeatMs: HEARTBEAT_MS, churnPerS: S.churnPerS } satisfies LoadOptions);
  const statsBefore = await getJson(`${url}/stats`);
  const ioBefore = writeCounters(proc.pid);

  // the burst
  phaseStart = now();
  const registered = load.next() as Promise<RegisterResult>;
  load.worker.postMessage({ cmd: 'register' });
  const capS = Math.max(5, Math.min(S.burstCapS, remainingS() - 30));
  const cap = setTimeout(() => load.worker.postMessage({ cmd: 'abort' }), capS * 1000);
  const reg = await registered;
  clearTimeout(cap);
  if (reg.aborted) result.notes.push(`registration burst cut after ${capS.toFixed(0)} s with ${reg.ok} of ${n} registered`);
  if (reg.errors) result.notes.push(`${reg.errors} registrations failed (${reg.firstError})`);
  const burstEnd = reg.endMs;
  result.phases_s.burst = (burstEnd - reg.startMs) / 1000;
  log(`N=${n}: ${reg.ok} registered in ${((burstEnd - reg.startMs) / 1000).toFixed(2)} s`);

  // window A: heartbeats, GET /services every second; the disk window closes diskWindowS after the burst
  const beats = load.next() as Promise<BeatResult>;
  load.worker.postMessage({ cmd: 'beat' });
  await sleep(burstEnd + S.diskWindowS * 1000 - now());
  const windowEnd = now();
  const ioWindow = writeCounters(proc.pid);
  const statsWindow = await getJson(`${url}/stats`);
  const services = await stopServices();
  // window B: heartbeats alone (and the /health poll): CPU per heartbeat, writes without changes
  const quietStart = now();
  await sleep(quietStart + S.quietWindowS * 1000 - now());
  const quietEnd = now();
  const ioQuiet = writeCounters(proc.pid);
  const statsQuiet = await getJson(`${url}/stats`);
  // window C: heartbeats and a steady churn of changes: steady-state writes
  const churnStart = now();
  load.worker.postMessage({ cmd: 'churn' });
  await sleep(churnStart + S.churnWindowS * 1000 - now());
  const churnEnd = now();
  const ioEnd = writeCounters(proc.pid);
  const statsEnd = await getJson(`${url}/stats`);
  load.worker.postMessage({ cmd: 'stop' });
  const hb = await beats;
  void load.worker.terminate();
  result.phases_s.heartbeats = (now() - burstEnd) / 1000;
  const stalls = await stopStalls();
  sampler.stop();
  let finalStateBytes: number | null = null;
  try {
    // the state on disk: the snapshot and the journal(s) beside it, where the registry keeps one
    const dir = dirname(statePath);
    const journals = readdirSync(dir).filter((f) => f.startsWith(`${basename(statePath)}.journal`));
    const files = [...(existsSync(statePath) ? [statePath] : []), ...journals.map((f) => join(dir, f))];
    if (files.length > 0) finalStateBytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
    else result.notes.push('no state file at the end of the registry phase');
  } catch {
    result.notes.push('no state file at the end of the registry phase');
  }
  const listing = await getJson(`${url}/services`, 120_000);
  const probed: Record<string, number> = {};
  for (const s of listing?.services ?? []) probed[s.health_status] = (probed[s.health_status] ?? 0) + 1;

  // disk: the registry's own count when it has one, else the kernel's count of bytes sent to storage
  const statsBytes = (s: any) => (typeof s?.state_file?.bytes_written === 'number' ? (s.state_file.bytes_written as number) : undefined);
  const fromStats = statsBytes(statsBefore) !== undefined && statsBytes(statsWindow) !== undefined;
  const written = fromStats ? statsBytes(statsWindow)! - statsBytes(statsBefore)! : ioBefore && ioWindow ? ioWindow.writeBytes - ioBefore.writeBytes : NaN;
  const between = (s0: any, s1: any, io0: typeof ioEnd, io1: typeof ioEnd) =>
    fromStats && statsBytes(s0) !== undefined && statsBytes(s1) !== undefined ? statsBytes(s1)! - statsBytes(s0)! : io0 && io1 ? io1.writeBytes - io0.writeBytes : NaN;
  const quiet = between(statsWindow, statsQuiet, ioWindow, ioQuiet);
  const steady = between(statsQuiet, statsEnd, ioQuiet, ioEnd);
  const eld = statsEnd?.process?.event_loop_delay_ms;

  const recs = stalls.records;
  const stallLat = (from: number, to: number) => {
    const out: number[] = [];
    for (let i = 0; i < recs.length; i += 3) if (recs[i]! >= from && recs[i]! < to) out.push(recs[i + 1]!);
    return out;
  };
  const allStalls = stallLat(-Infinity, Infinity);
  const hbCpu = sampler.cpuBySecond(proc.pid, quietStart, quietEnd);
  const hbOps = new Map(hb.perSecond);
  const hbCpuS = sampler.cpuS([proc.pid], quietStart, quietEnd);
  const burstCpuS = sampler.cpuS([proc.pid], reg.startMs - 1000, burstEnd + 1000);
  const fakeCpu = sampler.cpuS(fakePids, -Infinity, Infinity);
  result.fake_backends_cpu_s.registry = round(fakeCpu, 2);
  const lastSample = sampler.last(proc.pid);
  const figures: RegistryFigures = {
    registrations: {
      ok: reg.ok,
      errors: reg.errors,
      aborted: reg.aborted,
      seconds: round((burstEnd - reg.startMs) / 1000),
      // whole seconds around the burst, so short bursts are over-charged by their idle edges
      cpu_us_per_registration: burstCpuS !== null && reg.ok > 0 ? round((burstCpuS * 1e6) / reg.ok, 1) : null,
      ...(reg.firstError ? { first_error: reg.firstError } : {}),
    },
    heartbeats: {
      ...summarise(hb.latencies),
      sent: hb.sent,
      errors: hb.errors,
      skipped: hb.skipped,
      cpu_us_per_heartbeat: medianPerOp(hbCpu, hbOps, Math.max(1, n / 20)),
      cores: hbCpuS !== null ? round(hbCpuS / ((quietEnd - quietStart) / 1000)) : null,
      ...(hb.firstError ? { first_error: hb.firstError } : {}),
    },
    churn: { per_s: S.churnPerS, ...hb.churn },
    services_get: { ...summarise(services.latencies), mb: round(median(services.bytes) / 1e6) },
    stalls: { all: summarise(allStalls), burst: summarise(stallLat(reg.startMs, burstEnd)), after_burst: summarise(stallLat(burstEnd, Infinity)), over_250ms: allStalls.filter((x) => x >= 250).length },
    event_loop_delay_ms: eld && typeof eld.p99 === 'number' ? { p50: eld.p50, p99: eld.p99, max: eld.max } : null,
    disk: {
      source: fromStats ? '/stats state_file.bytes_written' : '/proc/PID/io write_bytes',
      window_s: round((windowEnd - reg.startMs) / 1000, 1),
      written_mb: round(written / 1e6),
      final_state_mb: round(finalStateBytes === null ? NaN : finalStateBytes / 1e6, 4),
      written_per_state: finalStateBytes ? round(written / finalStateBytes, 2) : null,
      quiet_kb_per_s: round(quiet / 1e3 / ((quietEnd - quietStart) / 1000), 1),
      steady_kb_per_s: round(steady / 1e3 / ((churnEnd - churnStart) / 1000), 1),
      steady_kb_per_change: hb.churn.ok > 0 ? round(steady / 1e3 / hb.churn.ok, 2) : null,
    },
    rss_mb: { peak: round(sampler.peak(proc.pid, 'rss'), 1), end: round(lastSample?.rss, 1) },
    fds: { peak: sampler.peak(proc.pid, 'fds'), end: lastSample?.fds ?? null },
    probed,
  };
  if (hb.skipped) result.notes.push(`${hb.skipped} heartbeats not sent: ${Math.max(256, S.concurrency)} were still unanswered (the registry fell behind)`);
  if (hb.errors) result.notes.push(`${hb.errors} heartbeats failed (${hb.firstError})`);
  if (stalls.firstError) result.notes.push(`/health poll failed: ${stalls.firstError}`);
  log(`N=${n}: registry phase done: heartbeat p99 ${figures.heartbeats.p99_ms} ms, /health max ${figures.stalls.all.max_ms} ms, written ${figures.disk.written_mb} MB`);
  return { url, proc, figures, held: listing?.services?.length ?? reg.ok };
}

// ---------------------------------------------------------------------------------------------
// phase 2: the router

function chatBody(model: string): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
}

/** Polls a router's /health until it counts `n` backends; returns the seconds from `since`, or null. */
async function untilListed(url: string, n: number, since: number, capS: number): Promise<{ s: number | null; listed: number }> {
  const end = now() + capS * 1000;
  let listed = 0;
  while (now() < end) {
    const h = await getJson(`${url}/health`, 5000);
    const total = Number(String(h?.healthy_services ?? '').split('/')[1]);
    if (Number.isFinite(total)) listed = total;
    if (listed >= n) return { s: (now() - since) / 1000, listed };
    await sleep(100);
  }
  return { s: null, listed };
}

async function routerPhase(n: number, registryUrl: string, fakes: Fakes, result: SizeResult): Promise<RouterFigures> {
  // the records the registry holds: fewer than N when the burst was cut or refused
  const staticFile = join(work, `baseline-${n}.json`);
  writeFileSync(staticFile, JSON.stringify({ services: Array.from({ length: 10 }, (_, i) => ({ name: `base-${i}`, host: `127.15.0.${i + 1}`, port: fakes.ports[0], metadata: { type: 'openai-api', models: ['base'] } })) }));
  const checkArgs = S.routerCheckIntervalS !== undefined ? ['--health-interval', String(S.routerCheckIntervalS)] : [];
  const [basePort, routerPort] = [await freePort(), await freePort()];
  const baseUrl = `http://127.0.0.1:${basePort}`;
  const routerUrl = `http://127.0.0.1:${routerPort}`;
  const baseSince = now();
  const base = start([...NODE_FLAGS, CLI, 'router', '--router-port', String(basePort), '--host', '127.0.0.1', '--static-services', staticFile, '--log-level', 'warn', ...checkArgs]);
  const baseListed = await untilListed(baseUrl, 10, baseSince, 30);
  const since = now();
  const router = start([...NODE_FLAGS, CLI, 'router', '--router-port', String(routerPort), '--host', '127.0.0.1', '--registry-url', registryUrl, '--log-level', 'warn', ...checkArgs]);
  const fakePids = fakes.procs.map((p) => p.pid);
  const sampler = new Sampler([router.pid, base.pid, ...fakePids]).start();
  const capS = Math.max(5, Math.min(S.listingCapS, remainingS() - S.routerSeconds - S.idleS - 20));
  const listed = await untilListed(routerUrl, n, since, capS);
  result.phases_s['router listing'] = (now() - since) / 1000;
  if (listed.s === null) result.notes.push(`the router listed ${listed.listed} of ${n} within ${capS.toFixed(0)} s; measured with those`);
  log(`N=${n}: router lists ${listed.listed} after ${((now() - since) / 1000).toFixed(2)} s`);

  // the same steady stream to both routers; the first warmupS seconds are not counted
  const streamStart = now();
  const interval = 1000 / S.rate;
  const stream = (origin: string, models: string[]) => pacer({ origin, requests: models.map((m) => ({ method: 'POST' as const, path: '/v1/chat/completions', body: chatBody(m) })), intervalMs: interval, maxOutstanding: 64, connections: 8 });
  const [stopRouter, stopBase] = await Promise.all([stream(routerUrl, spreadModels(n, LOADED_MODELS)), stream(baseUrl, ['base'])]);
  await sleep(streamStart + (S.warmupS + S.routerSeconds) * 1000 - now());
  const [rr, br] = await Promise.all([stopRouter(), stopBase()]);
  const streamEnd = now();
  result.phases_s['router stream'] = (streamEnd - streamStart) / 1000;
  // then both routers idle: what they spend without requests (health checks spread over the
  // interval, discovery) is subtracted from the stream's CPU, so a request's own cost shows
  await sleep(S.idleS * 1000);
  const idleEnd = now();
  const health = await getJson(`${routerUrl}/health`, 30_000);
  const routable = Number(String(health?.healthy_services ?? '').split('/')[0]);
  const stats = await getJson(`${routerUrl}/stats`, 60_000);
  sampler.stop();
  result.fake_backends_cpu_s.router = round(sampler.cpuS(fakePids, -Infinity, Infinity), 2);

  const measureFrom = streamStart + S.warmupS * 1000;
  const analyse = (r: PacerResult, pid: number) => {
    const lat: number[] = [];
    const done = new Map<number, number>();
    let errors = 0;
    let ok = 0;
    for (let i = 0; i < r.records.length; i += 3) {
      const [at, ms, status] = [r.records[i]!, r.records[i + 1]!, r.records[i + 2]!];
      // a request of the warm-up still out after it counts for latency (a stall that began early)
      if (at + ms < measureFrom) continue;
      lat.push(ms);
      if (at < measureFrom) continue;
      if (status !== 200) errors++;
      else ok++;
      const sec = Math.floor((at + ms) / 1000);
      done.set(sec, (done.get(sec) ?? 0) + 1);
    }
    // all CPU between two samples over the requests answered between them
    const span = sampler.span(pid, measureFrom, streamEnd);
    let answered = 0;
    for (let i = 0; span && i < r.records.length; i += 3) {
      const end = r.records[i]! + r.records[i + 1]!;
      if (end >= span.from && end < span.to) answered++;
    }
    const idle = sampler.span(pid, streamEnd + 500, idleEnd);
    const idleCores = idle && idle.to > idle.from ? idle.cpuS / ((idle.to - idle.from) / 1000) : null;
    const net = span && answered > 0 && idleCores !== null ? (span.cpuS - idleCores * ((span.to - span.from) / 1000)) / answered : null;
    return {
      lat,
      errors,
      ok,
      perOp: medianPerOp(sampler.cpuBySecond(pid, measureFrom, streamEnd), done, Math.max(1, S.rate / 4)),
      gross: span && answered > 0 ? round((span.cpuS * 1e6) / answered, 1) : null,
      idleCores: idleCores === null ? null : round(idleCores, 4),
      net: net === null ? null : round(net * 1e6, 1),
    };
  };
  const a = analyse(rr, router.pid);
  const b = analyse(br, base.pid);
  if (rr.firstError) result.notes.push(`router stream: ${rr.firstError}`);
  const figures: RouterFigures = {
    expected: n,
    listed_s: round(listed.s),
    listed: listed.listed,
    stats_total: typeof stats?.total_services === 'number' ? stats.total_services : null,
    baseline_listed_s: round(baseListed.s),
    cpu_us_per_request: a.perOp,
    baseline_cpu_us_per_request: b.perOp,
    cpu_ratio: a.perOp !== null && b.perOp ? round(a.perOp / b.perOp) : null,
    gross_cpu_us_per_request: a.gross,
    baseline_gross_cpu_us_per_request: b.gross,
    idle_cores: a.idleCores,
    baseline_idle_cores: b.idleCores,
    net_cpu_us_per_request: a.net,
    baseline_net_cpu_us_per_request: b.net,
    net_cpu_ratio: a.net !== null && b.net ? round(a.net / b.net) : null,
    requests: { ...summarise(a.lat), errors: a.errors, skipped: rr.skipped, ...(rr.firstError ? { first_error: rr.firstError } : {}) },
    baseline_requests: { ...summarise(b.lat), errors: b.errors },
    routable_end: Number.isFinite(routable) ? routable : null,
    rss_mb: { peak: round(sampler.peak(router.pid, 'rss'), 1), end: round(sampler.last(router.pid)?.rss, 1) },
    fds: { peak: sampler.peak(router.pid, 'fds') },
  };
  await Promise.all([stop(router), stop(base)]);
  log(`N=${n}: router phase done: CPU/request ${figures.cpu_us_per_request} µs vs ${figures.baseline_cpu_us_per_request} µs baseline, max ${figures.requests.max_ms} ms`);
  return figures;
}

// ---------------------------------------------------------------------------------------------
// phase 3: in-process routing figures, when the router's helper script exists

async function routingPhase(): Promise<ScaleReport['routing']> {
  const script = join(ROOT, 'bench', 'scale-routing.ts');
  if (!S.routing) return { skipped: quick ? 'skipped in --quick (--routing runs it)' : 'skipped (--no-routing)' };
  if (!existsSync(script)) return { skipped: 'not run: bench/scale-routing.ts does not exist in this checkout' };
  const timeoutS = Math.max(60, remainingS());
  const started = now();
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--json', '--sizes', S.sizes.join(','), '--listing-max', String(opts['routing-listing-max'])], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }, timeoutS * 1000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  if (code !== 0) return { skipped: `bench/scale-routing.ts exited ${code ?? 'by signal'} (time limit ${timeoutS.toFixed(0)} s)` };
  try {
    const parsed = JSON.parse(out) as RoutingRows;
    return { decisions: parsed.decisions, membership: parsed.membership, ran_s: round((now() - started) / 1000, 1)! };
  } catch (err) {
    return { skipped: `bench/scale-routing.ts printed no JSON (${(err as Error).message})` };
  }
}

// ---------------------------------------------------------------------------------------------

const loadAtStart = loadavg()[0]!;

/** The machine, with its 1-minute load average at the start and the end: a shared machine shows here. */
function machine(): ScaleReport['machine'] {
  return { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores: cpus().length, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version, loadavg: `${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end` };
}

function gitRevision(): string {
  try {
    return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']).toString().trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const limit = fdLimit();
  const maxN = S.sizes[S.sizes.length - 1] ?? 0;
  const notes: string[] = [];
  const fdNote = `Probing all N at once needs about N + 100 descriptors in the registry and in the router (${(maxN + 100).toLocaleString('en-US')} at N = ${maxN.toLocaleString('en-US')}); bounded probe concurrency C needs about C + 100. The fake backends run as enough processes to stay under the limit each.`;
  if (Number.isFinite(limit.soft) && maxN + 100 > limit.soft) notes.push(`N = ${maxN.toLocaleString('en-US')} exceeds the open-files limit ${limit.soft}: a registry or router that opens one connection per backend at once runs out of descriptors (EMFILE).`);
  const fakes = await startFakes(maxN);
  log(`${fakes.ports.length} fake backend process(es) on ports ${fakes.ports.join(', ')} (+1)`);
  const sizes: SizeResult[] = [];
  for (const n of S.sizes) {
    const result: SizeResult = { n, phases_s: {}, registry: null, router: null, fake_backends_cpu_s: {}, notes: [] };
    sizes.push(result);
    if (remainingS() < 20) {
      result.notes.push(`skipped: the time budget (${S.budgetS} s) ran out`);
      continue;
    }
    const began = now();
    const reg = await registryPhase(n, fakes, result);
    result.registry = reg.figures;
    if (remainingS() < S.routerSeconds + S.idleS + 15) result.notes.push(`router phase skipped: the time budget (${S.budgetS} s) ran out`);
    else result.router = await routerPhase(reg.held, reg.url, fakes, result);
    await stop(reg.proc);
    result.phases_s.total = (now() - began) / 1000;
    for (const [k, v] of Object.entries(result.phases_s)) result.phases_s[k] = round(v, 2)!;
  }
  await Promise.all(fakes.procs.map((p) => stop(p)));
  const routing = await routingPhase();
  const report: ScaleReport = {
    when: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    machine: machine(),
    settings: {
      revision: gitRevision(),
      sizes: S.sizes.join('/'),
      'registration concurrency': S.concurrency,
      'heartbeat period s': HEARTBEAT_MS / 1000,
      'windows after the burst s (disk, quiet, churn)': `${S.diskWindowS}/${S.quietWindowS}/${S.churnWindowS}`,
      'registry --health-interval s': S.probeIntervalS,
      'churn changes/s': S.churnPerS,
      'router --health-interval s': S.routerCheckIntervalS ?? 'default',
      'router stream req/s': S.rate,
      'router stream s': S.routerSeconds,
      'models loaded': LOADED_MODELS,
      'fake backend processes': fakes.ports.length,
    },
    fd_limit: { ...limit, note: fdNote },
    sizes,
    growth: growth(sizes),
    routing,
    checks: scaleChecks(sizes, 'skipped' in routing ? undefined : routing),
    notes,
    processes_left: startedPids.filter(alive),
    ran_s: round((Date.now() - t0) / 1000, 1)!,
  };
  mkdirSync(opts.out!, { recursive: true });
  writeFileSync(join(opts.out!, 'scale-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  const md = scaleMarkdown(report);
  writeFileSync(join(opts.out!, 'scale-latest.md'), md);
  if (opts.readme) {
    const readmePath = join(ROOT, 'README.md');
    const readme = readFileSync(readmePath, 'utf8');
    const [begin, end] = ['<!-- scale:begin -->', '<!-- scale:end -->'];
    const [a, b] = [readme.indexOf(begin), readme.indexOf(end)];
    if (a !== -1 && b > a) writeFileSync(readmePath, `${readme.slice(0, a + begin.length)}\n${md}${readme.slice(b)}`);
    else process.stderr.write('README.md has no <!-- scale:begin --> / <!-- scale:end --> block: not updated\n');
  }
  process.stdout.write(md);
}

main()
  .catch((err) => {
    process.stderr.write(`bench:scale failed: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
