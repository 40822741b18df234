/**
 * npm run bench:abuse: what abusive clients cost the router's HTTP/1.1 server, next to node:http
 * (llhttp) doing the same job with the same limits, for the same bytes: memory per chunk of a chunked
 * body (one connection, and the two-connection "chunk bomb"), memory under pipelining by a client
 * that never reads, and CPU of a 32 KiB head sent a byte at a time, with an ordinary request's CPU
 * as the yardstick. All on 127.0.0.1, bounded in time; a memory measurement stops when the server's
 * RSS passes a cap, so the machine is never at risk. Every process started here is stopped by its
 * process group. Reports go to bench/results/abuse-latest.{json,md}.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NODE_FLAGS } from '../src/common/node-flags.js';
import { chunkedBodies, HEALTH_REQUEST, headByteAtATime, largeHead, ONE_BYTE_CHUNK, pipelined, smallRequests, type Server } from './abuse-patterns.js';
import { measurement, median, toMarkdown, type AbuseReport, type FigureSpec, type Measurement, type TargetResult } from './abuse-report.js';
import { BenchProcess, freePort } from './processes.js';
import { RawClient, rawGet } from './raw-client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const ROUTER_BIN = join(ROOT, 'dist', 'bin', 'infini-router.js');
const NODE_TARGET = join(ROOT, 'dist', 'bench', 'node-http-target.js');

/** Default settings, and the tiny ones of --quick (a smoke run); a flag given wins over both. */
const SIZES = {
  chunks: ['200000,1000000', '20000'],
  'bomb-chunks': ['1000000', '20000'],
  'bomb-connections': ['2', '2'],
  pipelined: ['300000', '5000'],
  'head-bytes': ['32000', '4000'],
  reps: ['5', '1'],
  'baseline-requests': ['5000', '200'],
  'rss-cap-mb': ['1536', '1536'],
} as const;
type SizeKey = keyof typeof SIZES;

const { values: opts } = parseArgs({
  options: {
    ...(Object.fromEntries(Object.keys(SIZES).map((k) => [k, { type: 'string' }])) as Record<SizeKey, { type: 'string' }>),
    'max-body': { type: 'string', default: String(32 * 1024 * 1024) },
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(`npm run bench:abuse -- [--chunks N,N (200000,1000000)] [--bomb-chunks N per connection (1000000)]
                       [--bomb-connections N (2)] [--pipelined N (300000)] [--head-bytes N (32000)]
                       [--reps N (5)] [--baseline-requests N (5000)] [--rss-cap-mb MB (1536)]
                       [--max-body BYTES (33554432, the router's default)] [--quick] [--out DIR]
Measures the router's HTTP/1.1 server and node:http side by side under abusive clients on 127.0.0.1.
--quick: tiny sizes (a smoke run of a few seconds). Reports go to DIR/abuse-latest.{json,md}.
`);
  process.exit(0);
}

const setting = (key: SizeKey): string => opts[key] ?? SIZES[key][opts.quick ? 1 : 0];
const chunkCounts = setting('chunks').split(',').map(Number);
const bombChunks = Number(setting('bomb-chunks'));
const bombConnections = Number(setting('bomb-connections'));
const pipelinedRequests = Number(setting('pipelined'));
const headBytes = Number(setting('head-bytes'));
const reps = Number(setting('reps'));
const baselineRequests = Number(setting('baseline-requests'));
const capMb = Number(setting('rss-cap-mb'));
const maxBody = Number(opts['max-body']);
const TIMEOUT_MS = 60_000;
for (const n of [...chunkCounts, bombChunks]) if (!(n > 0 && n <= maxBody)) throw new Error(`chunk counts must be between 1 and the body limit (${maxBody}): ${n}`);

const work = mkdtempSync(join(tmpdir(), 'infini-abuse-'));
const procs = new Set<BenchProcess>();
const started = (p: BenchProcess, what: string) => {
  procs.add(p);
  process.stderr.write(`abuse: started ${what} pid ${p.pid}\n`);
  return p;
};
const stop = async (p: BenchProcess) => {
  await p.stop();
  procs.delete(p);
};
const cleanup = async () => {
  await Promise.all([...procs].map((p) => p.stop()));
  rmSync(work, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().then(() => process.exit(130)));

/** Waits until the server answers GET /health (or its process exits). */
async function ready(p: BenchProcess, port: number): Promise<void> {
  for (const deadline = Date.now() + 20_000; ; ) {
    try {
      if ((await rawGet(port, '/health')).status === 200) return;
    } catch {
      // not listening yet
    }
    if (p.proc.exitCode !== null || Date.now() > deadline) throw new Error(`pid ${p.pid} did not come up on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let staticFile = '';
const answerBytes: Record<string, number> = {};

/** A freshly started server (JIT warmed by a few hundred requests); stop it with `stop`. */
async function startServer(name: string): Promise<Server & { process: BenchProcess }> {
  const port = await freePort();
  // the same node binary and V8 flags for both; the router's bin shim sets exactly these flags
  const args =
    name === 'router'
      ? [...NODE_FLAGS, ROUTER_BIN, '--router-port', String(port), '--host', '127.0.0.1', '--static-services', staticFile, '--max-body', String(maxBody), '--log-level', 'error']
      : [...NODE_FLAGS, NODE_TARGET, '--port', String(port), '--max-body', String(maxBody)];
  const p = started(new BenchProcess(process.execPath, args), name);
  await ready(p, port);
  const c = await RawClient.open(port);
  for (let i = 0; i < 300; i++) answerBytes[name] = (await c.get('/health')).bytes;
  c.close();
  return { name, port, pid: p.pid, process: p };
}

const TARGETS = ['router', 'node:http'] as const;
/** The targets in alternating order from one measurement to the next, so neither always goes first. */
const order = (i: number) => (i % 2 === 0 ? [...TARGETS] : [...TARGETS].reverse());

const fmtInt = (n: number) => n.toLocaleString('en-US');
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

const CHUNK_FIGURES: FigureSpec[] = [
  { key: 'rss_growth_mb', label: 'RSS growth, MB', digits: 1 },
  { key: 'rss_per_chunk', label: 'RSS per chunk, bytes', digits: 1, ratio: true },
  { key: 'heap_per_chunk', label: 'heap + external per chunk, bytes', digits: 1, ratio: true },
  { key: 'cpu_per_chunk', label: 'CPU per chunk, µs', digits: 2, ratio: true },
  { key: 'peak_rss_mb', label: 'peak RSS, MB', digits: 0 },
];

async function chunkMeasurement(i: number, connections: number, chunks: number): Promise<Measurement> {
  const targets: Record<string, TargetResult> = {};
  for (const name of order(i)) {
    const s = await startServer(name);
    const r = await chunkedBodies(s, connections, chunks, capMb, TIMEOUT_MS);
    await stop(s.process);
    targets[name] = {
      outcome: r.outcome,
      figures: { rss_growth_mb: r.rssGrowthMb, rss_per_chunk: r.rssBytesPerChunk, heap_per_chunk: r.heapBytesPerChunk, cpu_per_chunk: r.cpuUsPerChunk, peak_rss_mb: r.peakRssMb },
      ...(r.answers.length > 0 ? { note: `answered ${r.answers.map((a) => JSON.stringify(a)).join(', ')}` } : {}),
    };
    process.stderr.write(`abuse: ${connections} x ${chunks} chunks, ${name}: ${r.outcome}, RSS +${r.rssGrowthMb.toFixed(1)} MB, ${r.rssBytesPerChunk?.toFixed(1) ?? '-'} bytes/chunk\n`);
  }
  const wire = connections * chunks * ONE_BYTE_CHUNK.length;
  const title =
    connections === 1
      ? `chunked body, ${fmtInt(chunks)} one-byte chunks (${mb(wire)} MB on the wire), never finished`
      : `chunk bomb: ${connections} connections x ${fmtInt(chunks)} one-byte chunks (${mb(wire)} MB on the wire)`;
  return measurement(connections === 1 ? `chunked-${chunks}` : 'chunk-bomb', title, CHUNK_FIGURES, targets);
}

async function pipelineMeasurement(i: number): Promise<Measurement> {
  const targets: Record<string, TargetResult> = {};
  for (const name of order(i)) {
    const s = await startServer(name);
    const r = await pipelined(s, pipelinedRequests, capMb, TIMEOUT_MS);
    await stop(s.process);
    targets[name] = {
      outcome: r.outcome,
      figures: {
        requests_read: r.requestsRead,
        stopped_reading: r.outcome === 'ok' ? !r.readAll : undefined,
        answers_mb: (r.requestsRead * answerBytes[name]!) / 1e6,
        rss_growth_mb: r.rssGrowthMb,
        peak_rss_mb: r.peakRssMb,
        cpu_ms: r.cpuMs,
      },
    };
    process.stderr.write(`abuse: ${pipelinedRequests} pipelined, ${name}: ${r.outcome}, read ${r.requestsRead}, RSS +${r.rssGrowthMb.toFixed(1)} MB\n`);
  }
  return measurement(
    'pipelining',
    `${fmtInt(pipelinedRequests)} pipelined GET /health (${mb(pipelinedRequests * HEALTH_REQUEST.length)} MB), client never reads`,
    [
      { key: 'requests_read', label: 'requests read', digits: 0, ratio: true },
      { key: 'stopped_reading', label: 'stopped reading', digits: 0 },
      { key: 'answers_mb', label: 'answers produced, MB', digits: 1, ratio: true },
      { key: 'rss_growth_mb', label: 'RSS growth, MB', digits: 1, ratio: true },
      { key: 'peak_rss_mb', label: 'peak RSS, MB', digits: 0 },
      { key: 'cpu_ms', label: 'CPU, ms', digits: 0, ratio: true },
    ],
    targets,
  );
}

/** CPU: the byte-at-a-time head and ordinary requests, repetitions alternating between the targets. */
async function cpuMeasurements(): Promise<Measurement[]> {
  const { head, headers } = largeHead(headBytes);
  const servers = await Promise.all(TARGETS.map((t) => startServer(t)));
  const samples: Record<string, { head: number[]; reads: number[]; status: number[]; request: number[]; non200: number }> = {};
  for (const s of servers) {
    samples[s.name] = { head: [], reads: [], status: [], request: [], non200: 0 };
    // warm-up of both code paths, not counted
    await smallRequests(s, Math.min(baselineRequests, 1000));
    await headByteAtATime(s, head, TIMEOUT_MS);
  }
  for (let rep = 0; rep < reps; rep++) {
    for (const name of order(rep)) {
      const s = servers.find((x) => x.name === name)!;
      const small = await smallRequests(s, baselineRequests);
      const h = await headByteAtATime(s, head, TIMEOUT_MS);
      const x = samples[name]!;
      x.request.push(small.cpuUsPerRequest);
      x.non200 += small.non200;
      x.head.push(h.cpuMs);
      if (h.reads !== undefined) x.reads.push(h.reads);
      x.status.push(h.status);
      process.stderr.write(`abuse: rep ${rep + 1}/${reps} ${name}: head ${h.cpuMs.toFixed(0)} ms CPU in ${h.reads ?? '?'} reads (status ${h.status}), small request ${small.cpuUsPerRequest.toFixed(1)} µs\n`);
    }
  }
  await Promise.all(servers.map((s) => stop(s.process)));
  const headTargets: Record<string, TargetResult> = {};
  const baseTargets: Record<string, TargetResult> = {};
  const ratioTargets: Record<string, TargetResult> = {};
  for (const name of TARGETS) {
    const x = samples[name]!;
    const statuses = [...new Set(x.status)];
    headTargets[name] = {
      outcome: 'ok',
      figures: { cpu_ms: median(x.head), reads: median(x.reads), status: statuses.length === 1 ? statuses[0] : undefined },
      samples: { cpu_ms: x.head, reads: x.reads, status: x.status },
      ...(statuses.length > 1 ? { note: `answers ${statuses.join(', ')}` } : {}),
    };
    baseTargets[name] = {
      outcome: 'ok',
      figures: { cpu_us: median(x.request) },
      samples: { cpu_us: x.request },
      ...(x.non200 > 0 ? { note: `${x.non200} answers were not 200` } : {}),
    };
    const h = median(x.head);
    const b = median(x.request);
    ratioTargets[name] = { outcome: 'ok', figures: { requests: h !== undefined && b !== undefined && b > 0 ? (h * 1000) / b : undefined } };
  }
  return [
    measurement(
      'head-byte-at-a-time',
      `${(head.length / 1024).toFixed(1)} KiB head (${headers} header lines), one byte per write, median of ${reps}`,
      [
        { key: 'cpu_ms', label: 'CPU per head, ms', digits: 1, ratio: true },
        { key: 'reads', label: 'read() calls by the server', digits: 0, ratio: true },
        { key: 'status', label: 'answer status', digits: 0 },
      ],
      headTargets,
    ),
    measurement('small-request', `ordinary GET /health, keep-alive, ${fmtInt(baselineRequests)} one after another, median of ${reps}`, [{ key: 'cpu_us', label: 'CPU per request, µs', digits: 1, ratio: true }], baseTargets),
    measurement('head-in-requests', 'the byte-at-a-time head in ordinary requests', [{ key: 'requests', label: 'head CPU / request CPU', digits: 0, ratio: true }], ratioTargets),
  ];
}

function machine(): AbuseReport['machine'] {
  return { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores: cpus().length, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version, kernel: release() };
}

async function main(): Promise<void> {
  const backendPort = await freePort();
  const mock = started(new BenchProcess(process.execPath, [...NODE_FLAGS, CLI, 'mock', '--port', String(backendPort), '--models', 'm', '--log-level', 'warn']), 'mock backend');
  await ready(mock, backendPort);
  staticFile = join(work, 'static.json');
  writeFileSync(staticFile, JSON.stringify({ services: [{ name: 'mock', host: '127.0.0.1', port: backendPort, metadata: { models: ['m'] } }] }));

  const measurements: Measurement[] = [];
  let i = 0;
  for (const chunks of chunkCounts) measurements.push(await chunkMeasurement(i++, 1, chunks));
  measurements.push(await chunkMeasurement(i++, bombConnections, bombChunks));
  measurements.push(await pipelineMeasurement(i++));
  measurements.push(...(await cpuMeasurements()));

  const report: AbuseReport = {
    when: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    machine: machine(),
    targets: [
      { name: 'router', started: `\`infini-router --router-port P --host 127.0.0.1 --static-services FILE\` (one mock backend; the bodies never complete, so nothing reaches it), --max-body ${maxBody} bytes, head limit 32 KiB` },
      {
        name: 'node:http',
        started:
          `bench/node-http-target.ts: node:http with the same body limit (bodies buffered whole, 413 beyond), head limit 32 KiB, timeouts and connection cap, and /health and /stats answers of the same shape (${answerBytes['node:http']} bytes for /health against the router's ${answerBytes.router}: node:http adds Connection and Keep-Alive headers). ` +
          "It keeps each body part as node:http delivers it, a Buffer per chunk, as the router keeps a view per chunk: both pay per chunk, so for memory per chunk the ratio is no target; the bound to reach is memory proportional to body bytes",
      },
    ],
    method: [
      `both run by the same node (${process.execPath.split('/').pop()} ${process.version}) with the services' V8 flags (${NODE_FLAGS.join(' ')}), each memory figure on a freshly started process warmed by 300 requests, the two targets alternating in order`,
      'RSS from /proc/PID/status (VmRSS) before and after, once the server has read every byte sent (kernel queues of the connection empty); "heap + external" is heapUsed + external from the server\'s /stats (garbage not yet collected included)',
      'CPU is utime + stime from /proc/PID/stat (10 ms ticks); read() calls and bytes read from /proc/PID/io',
      `a measurement stops when the server's RSS passes ${capMb} MB ("exceeded the RSS cap")`,
    ],
    settings: {
      'one-byte chunks': chunkCounts.map(fmtInt).join(' and '),
      'chunk bomb': `${bombConnections} x ${fmtInt(bombChunks)}`,
      pipelined: fmtInt(pipelinedRequests),
      'head bytes': headBytes,
      repetitions: reps,
      'ordinary requests per repetition': baselineRequests,
      'RSS cap MB': capMb,
    },
    measurements,
  };
  mkdirSync(opts.out!, { recursive: true });
  // figures to a thousandth (CPU ticks and /proc sizes carry no more), the same in JSON and Markdown
  const json = JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v), 2);
  writeFileSync(join(opts.out!, 'abuse-latest.json'), json + '\n');
  const md = toMarkdown(JSON.parse(json) as AbuseReport);
  writeFileSync(join(opts.out!, 'abuse-latest.md'), md);
  process.stdout.write(md);
}

main()
  .catch((err) => {
    process.stderr.write(`bench:abuse failed: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
