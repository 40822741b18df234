/**
 * npm run soak: a whole local cluster (`infini-svc up`, default timers) under light load for a few
 * minutes, with faults injected on purpose: backend errors and dropped streams (per request, by
 * header), client aborts, engines killed with SIGKILL, the registry killed and restarted. Every
 * request is classified; a failure no injected fault explains is "unexpected". Reports the error
 * rate against the injected rate, and RSS and open files of every service over time. Traffic goes
 * to 127.0.0.1 only; the run is bounded and stops the cluster (and checks that nothing is left).
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getJson } from '../src/common/get-json.js';
import { alive, childProcesses, freePortPair, openFiles, rssMb } from './processes.js';
import { Traffic } from './traffic.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli.js');

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '180' },
    rate: { type: 'string', default: '10' },
    backends: { type: 'string', default: '3' },
    'error-rate': { type: 'string', default: '0.02' },
    'drop-rate': { type: 'string', default: '0.02' },
    'abort-rate': { type: 'string', default: '0.05' },
    'kill-every': { type: 'string', default: '45' },
    'registry-kill-at': { type: 'string' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(`npm run soak -- [--duration S (180)] [--rate REQ_PER_S (10)] [--backends N (3)]
              [--error-rate P (0.02)] [--drop-rate P (0.02)] [--abort-rate P (0.05)]
              [--kill-every S (45): SIGKILL one engine this often] [--registry-kill-at S (duration/2)]
              [--seed N] [--out DIR]
Runs a local cluster with default timers under light load with injected faults; exits 1 on any
unexpected error or a process left behind. Reports go to DIR/soak-latest.{json,md}.
`);
  process.exit(0);
}

const durationMs = Number(opts.duration) * 1000;
const rate = Number(opts.rate);
const nBackends = Number(opts.backends);
const errorRate = Number(opts['error-rate']);
const dropRate = Number(opts['drop-rate']);
const abortRate = Number(opts['abort-rate']);
const killEveryMs = Number(opts['kill-every']) * 1000;
const registryKillAtMs = (opts['registry-kill-at'] !== undefined ? Number(opts['registry-kill-at']) : Number(opts.duration) / 2) * 1000;

// ---------------------------------------------------------------------------------------------
// ports and the cluster file

const MODELS = ['soak-small', 'soak-medium', 'soak-large'];

function clusterFile(registryPort: number, routerPort: number, ports: number[]): string {
  const lines = ['[registry]', `port = ${registryPort}`, 'host = "127.0.0.1"', '[router]', `router-port = ${routerPort}`, 'host = "127.0.0.1"'];
  ports.forEach((port, i) => {
    // every model on two backends, so killing one engine never leaves a model without one
    const models = [MODELS[i % MODELS.length]!, MODELS[(i + 1) % MODELS.length]!];
    lines.push('[[babysitter]]', `name = "soak-${i}"`, `port = ${port}`, 'host = "127.0.0.1"', '[babysitter.backend]', 'type = "mock"', `models = ${JSON.stringify(models)}`, 'args = ["--profile", "realistic", "--output-tokens", "24"]');
  });
  return `${lines.join('\n')}\n`;
}

const events: Array<{ at_s: number; what: string }> = [];
let t0 = 0;
const note = (what: string) => {
  events.push({ at_s: Math.round((Date.now() - t0) / 100) / 10, what });
  process.stderr.write(`soak: ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}\n`);
};

// ---------------------------------------------------------------------------------------------

interface Sample {
  at_s: number;
  service: string;
  pid: number;
  rss_mb: number;
  fds: number;
}

/** Signals a process that may have gone meanwhile (an engine that just crashed on its own). */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'infini-soak-'));
  const [registryPort, routerPort] = [await freePortPair(), await freePortPair()];
  const ports: number[] = [];
  for (let i = 0; i < nBackends; i++) ports.push(await freePortPair());
  const file = join(dir, 'cluster.toml');
  writeFileSync(file, clusterFile(registryPort!, routerPort!, ports));
  const routerUrl = `http://127.0.0.1:${routerPort}`;

  // with the parent-death pipe: if this script dies, up stops the cluster instead of leaving it
  const up = spawn(process.execPath, [CLI, 'up', '--file', file, '--data-dir', join(dir, 'data')], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, INFINI_PARENT_FD: '3' },
  });
  (up.stdio[3] as Socket | null)?.unref();
  let upOut = '';
  up.stdout!.on('data', (d) => (upOut += d));
  up.stderr!.on('data', (d) => (upOut += d));
  const upExited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
  const killGroup = () => {
    try {
      process.kill(-up.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  };
  process.once('SIGINT', () => {
    killGroup();
    process.exit(130);
  });
  let traffic: Traffic;
  let ranMs: number;
  const samples: Sample[] = [];
  const seenPids = new Set<number>();
  let engineKills = 0;
  let registryKilled = false;
  try {
    for (const deadline = Date.now() + 120_000; !upOut.includes('Press Ctrl-C to stop.'); ) {
      if (Date.now() > deadline || up.exitCode !== null) {
        killGroup();
        throw new Error(`the cluster did not come up:\n${upOut.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }

    const services = (): Array<{ service: string; pid: number }> => {
      const out = [{ service: 'up', pid: up.pid! }];
      for (const c of childProcesses(up.pid!)) {
        const m = / (registry|router|babysitter) /.exec(` ${c.cmd} `);
        if (!m) continue;
        const name = m[1] === 'babysitter' ? `babysitter ${/soak-\d+/.exec(c.cmd)?.[0] ?? c.pid}` : m[1]!;
        out.push({ service: name, pid: c.pid });
      }
      return out;
    };
    const sample = async () => {
      const at = Math.round((Date.now() - t0) / 1000);
      for (const s of services()) samples.push({ at_s: at, service: s.service, pid: s.pid, rss_mb: Math.round(rssMb(s.pid) * 10) / 10, fds: openFiles(s.pid) });
      for (const [i, port] of ports.entries()) {
        const info = (await getJson(`http://127.0.0.1:${port + 1}/info`))?.body;
        if (typeof info?.pid === 'number') samples.push({ at_s: at, service: `engine soak-${i}`, pid: info.pid, rss_mb: Math.round(rssMb(info.pid) * 10) / 10, fds: openFiles(info.pid) });
      }
      for (const s of samples) seenPids.add(s.pid);
    };

    t0 = Date.now();
    note(`cluster up: router ${routerUrl}, ${nBackends} mock engines; load ${rate} req/s for ${durationMs / 1000} s`);
    await sample();
    const sampler = setInterval(() => void sample(), 5000);
    traffic = new Traffic({
      routerUrl,
      models: MODELS,
      rate,
      errorRate,
      dropRate,
      abortRate,
      seed: Number(opts.seed),
      onUnexpected: (r) => note(`unexpected: ${r.stream ? 'stream' : 'request'} ${r.backend ?? ''} ${r.detail}`),
    });
    let nextKill = killEveryMs;
    let killIndex = 0;
    await traffic.run(durationMs, async (elapsed) => {
      if (killEveryMs > 0 && elapsed >= nextKill) {
        nextKill += killEveryMs;
        const idx = killIndex++ % nBackends;
        const info = (await getJson(`http://127.0.0.1:${ports[idx]! + 1}/info`))?.body;
        if (typeof info?.pid === 'number' && info.state === 'ready') {
          traffic.noteKill(`soak-${idx}-server`);
          signal(info.pid, 'SIGKILL');
          engineKills++;
          note(`SIGKILL engine soak-${idx} (pid ${info.pid})`);
        } else note(`engine soak-${idx} not ready (${info?.state ?? 'no answer'}): not killed`);
      }
      if (!registryKilled && elapsed >= registryKillAtMs) {
        registryKilled = true;
        const reg = services().find((s) => s.service === 'registry');
        if (reg) {
          signal(reg.pid, 'SIGKILL');
          note(`SIGKILL registry (pid ${reg.pid}); up restarts it`);
        }
      }
    });
    clearInterval(sampler);
    await sample();
    ranMs = Date.now() - t0;
  } catch (err) {
    // whatever went wrong, the cluster does not outlive the run
    killGroup();
    throw err;
  }

  // Ctrl-C as a user would: everything must stop, and nothing may be left
  note('SIGINT to up');
  const stopStart = Date.now();
  process.kill(up.pid!, 'SIGINT');
  const stopTimer = setTimeout(killGroup, 120_000);
  const upCode = await upExited;
  clearTimeout(stopTimer);
  const stopMs = Date.now() - stopStart;
  await new Promise((r) => setTimeout(r, 500));
  const leftovers = [...seenPids].filter(alive);
  for (const pid of leftovers) process.kill(pid, 'SIGKILL');

  // ---- report
  const summary = traffic.summary();
  const growth = [...new Set(samples.map((s) => `${s.service}\u0000${s.pid}`))].map((key) => {
    const [service, pid] = key.split('\u0000') as [string, string];
    const mine = samples.filter((s) => s.service === service && s.pid === Number(pid) && Number.isFinite(s.rss_mb));
    // from the first sample after this process's warm-up (a minute, or a third of a short run,
    // from when it was first seen: an engine restarted late is still loading) to the last
    const warm = mine[0]!.at_s + Math.min(60, durationMs / 3000);
    const first = mine.find((s) => s.at_s >= warm) ?? mine[0]!;
    const last = mine[mine.length - 1]!;
    return { service, pid: Number(pid), from_s: first?.at_s, to_s: last?.at_s, rss_mb: [first?.rss_mb, last?.rss_mb], rss_growth: last && first ? Math.round((last.rss_mb / first.rss_mb) * 1000) / 1000 : null, fds: [first?.fds, last?.fds] };
  });
  const report = {
    measured_at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? '', memory_gb: Math.round(totalmem() / 1e9), node: process.version },
    settings: { duration_s: durationMs / 1000, rate_per_s: rate, backends: nBackends, error_rate: errorRate, drop_rate: dropRate, abort_rate: abortRate, kill_every_s: killEveryMs / 1000, registry_kill_at_s: registryKillAtMs / 1000, seed: Number(opts.seed) },
    ran_s: Math.round(ranMs / 100) / 10,
    requests: {
      total: summary.total,
      ok: summary.ok,
      aborted_by_client: summary.aborted_by_client,
      injected_errors: summary.injected_errors,
      injected_drops: summary.injected_drops,
      cut_by_engine_kill: summary.cut_by_engine_kill,
      unexpected: summary.unexpected,
      not_sent_over_concurrency_cap: summary.not_sent_over_concurrency_cap,
    },
    rates: { error_rate: summary.error_rate, injected_rate: summary.injected_rate, unexpected_rate: summary.unexpected_rate },
    unexpected: traffic.records.filter((r) => r.outcome === 'unexpected').slice(0, 50).map((r) => ({ at_s: (r.start - t0) / 1000, stream: r.stream, backend: r.backend, detail: r.detail })),
    faults: { engine_kills: engineKills, registry_kills: registryKilled ? 1 : 0 },
    events,
    growth,
    shutdown: { up_exit_code: upCode, stop_s: Math.round(stopMs / 100) / 10, processes_left: leftovers },
  };
  mkdirSync(opts.out!, { recursive: true });
  writeFileSync(join(opts.out!, 'soak-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(opts.out!, 'soak-latest.md'), markdown(report));
  process.stdout.write(markdown(report));
  rmSync(dir, { recursive: true, force: true });
  const pass = report.requests.unexpected === 0 && leftovers.length === 0 && upCode === 0;
  process.exit(pass ? 0 : 1);
}

function markdown(r: any): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const lines = [
    `Soak run ${r.measured_at} on ${r.machine.cpu} (${r.machine.cpus} cores), Node ${r.machine.node}.`,
    `Settings: ${Object.entries(r.settings).map(([k, v]) => `${k} ${v}`).join(', ')}. Ran ${r.ran_s} s.`,
    '',
    '| requests | count |',
    '|---|---:|',
    ...Object.entries(r.requests).map(([k, v]) => `| ${k.replaceAll('_', ' ')} | ${v} |`),
    '',
    `Error rate ${pct(r.rates.error_rate)} against an injected rate of ${pct(r.rates.injected_rate)} (injected errors, dropped streams, streams cut by ${r.faults.engine_kills} engine kills); unexpected ${pct(r.rates.unexpected_rate)}. Registry killed ${r.faults.registry_kills} time(s) and restarted by up.`,
    '',
    '| service | pid | RSS MB (from -> to) | RSS growth | open files (from -> to) | window s |',
    '|---|---:|---|---:|---|---|',
    ...r.growth.map((g: any) => `| ${g.service} | ${g.pid} | ${g.rss_mb[0]} -> ${g.rss_mb[1]} | ${g.rss_growth} | ${g.fds[0]} -> ${g.fds[1]} | ${g.from_s}-${g.to_s} |`),
    '',
    `Ctrl-C: up exited ${r.shutdown.up_exit_code} after ${r.shutdown.stop_s} s; processes left: ${r.shutdown.processes_left.length ? r.shutdown.processes_left.join(', ') : 'none'}.`,
    '',
  ];
  if (r.unexpected.length) lines.push('Unexpected failures:', ...r.unexpected.map((u: any) => `- ${u.at_s.toFixed(1)} s ${u.stream ? 'stream' : 'request'} ${u.backend ?? ''}: ${u.detail}`), '');
  return lines.join('\n');
}

main().catch((err) => {
  process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
