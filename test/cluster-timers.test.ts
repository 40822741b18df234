/**
 * A whole cluster (up: registry, router, three babysitters with mock engines) with every timer
 * shortened, under light traffic for more than five times its longest timer, with faults between
 * the timers: an engine killed, the registry paused for longer than its stale timeout. Faults that
 * only show with time (a router forgetting its backends, a paused registry evicting everyone)
 * fail here within a minute instead of after an hour in production.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Traffic } from '../bench/traffic.js';
import { describe, it } from './helpers/test.js';
import { freePortPair, http, pidAlive, spawnCli, tempDir, waitFor } from './helpers/services.js';

/** Shortened timers, seconds. The longest one decides how long the traffic runs. */
const T = {
  heartbeat: 0.2,
  heartbeatTimeout: 1.5,
  staleTimeout: 3,
  cleanup: 0.5,
  registryProbe: 0.5,
  routerHealth: 0.5,
  probeTimeout: 1,
  grace: 1,
  liveness: 0.5,
  readiness: 0.3,
  restartDelay: 0.3,
  stopGrace: 2,
};
const LONGEST_S = Math.max(...Object.values(T));
const MODELS = ['tm-a', 'tm-b', 'tm-c'];

describe('a whole cluster with every timer shortened', () => {
  it('serves traffic for 5x its longest timer with zero unexpected errors through an engine kill and a registry pause', { timeout: 120_000 }, async () => {
    const dir = await tempDir('infini-timers-');
    const [registryPort, routerPort, ...ports] = [await freePortPair(), await freePortPair(), await freePortPair(), await freePortPair(), await freePortPair()];
    const lines = [
      '[registry]',
      `port = ${registryPort}`,
      `heartbeat-timeout = ${T.heartbeatTimeout}`,
      `stale-timeout = ${T.staleTimeout}`,
      `cleanup-interval = ${T.cleanup}`,
      `health-interval = ${T.registryProbe}`,
      `health-timeout = ${T.probeTimeout}`,
      '[router]',
      `router-port = ${routerPort}`,
      `health-interval = ${T.routerHealth}`,
      `health-timeout = ${T.probeTimeout}`,
      `service-removal-grace-period = ${T.grace}`,
      `registry-sync-interval = ${T.routerHealth}`,
    ];
    ports.forEach((port, i) => {
      lines.push(
        '[[babysitter]]',
        `name = "tm-${i}"`,
        `port = ${port}`,
        '[babysitter.babysitter]',
        `heartbeat_interval = ${T.heartbeat}`,
        `liveness_interval = ${T.liveness}`,
        `liveness_timeout = ${T.probeTimeout}`,
        `readiness_interval = ${T.readiness}`,
        `readiness_timeout = ${T.probeTimeout}`,
        `restart_delay = ${T.restartDelay}`,
        'max_restart_delay = 2',
        `stop_grace = ${T.stopGrace}`,
        '[babysitter.backend]',
        'type = "mock"',
        // each model on two engines: killing one never leaves a model without a backend
        `models = ${JSON.stringify([MODELS[i]!, MODELS[(i + 1) % 3]!])}`,
        'args = ["--itl-ms", "5", "--output-tokens", "12"]',
      );
    });
    const file = join(dir, 'cluster.toml');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const up = spawnCli(['up', '--file', file, '--data-dir', join(dir, 'data')]);
    await waitFor(() => up.stdout.includes('Press Ctrl-C to stop.') || !up.alive, 'cluster up', 60_000);
    assert.ok(up.alive, up.stdout + up.stderrText);
    const routerUrl = `http://127.0.0.1:${routerPort}`;
    const registryUrl = `http://127.0.0.1:${registryPort}`;
    const registryPid = JSON.parse(readFileSync(join(dir, 'data', 'logs', 'registry.log'), 'utf8').split('\n')[0]!).pid as number;

    const traffic = new Traffic({ routerUrl, models: MODELS, rate: 20, errorRate: 0.02, dropRate: 0.02, abortRate: 0.05, seed: 7, maxTokens: 12, abortWithinMs: 60 });
    const durationS = 5 * LONGEST_S;
    let killed = false;
    let paused = false;
    let resume: NodeJS.Timeout | undefined;
    try {
      await traffic.run(durationS * 1000, async (elapsed) => {
        if (!killed && elapsed >= 0.25 * durationS * 1000) {
          killed = true;
          const info = (await http('GET', `http://127.0.0.1:${ports[0]! + 1}/info`)).body;
          traffic.noteKill('tm-0-server');
          process.kill(info.pid, 'SIGKILL');
        }
        if (!paused && elapsed >= 0.5 * durationS * 1000) {
          // stopped for longer than the stale timeout: time it was not running must not count
          paused = true;
          process.kill(registryPid, 'SIGSTOP');
          resume = setTimeout(() => process.kill(registryPid, 'SIGCONT'), (T.staleTimeout + 1) * 1000);
        }
      });
    } finally {
      // never leave the registry stopped, whatever happened
      if (resume) {
        clearTimeout(resume);
        try {
          process.kill(registryPid, 'SIGCONT');
        } catch {
          // gone
        }
      }
    }
    const summary = traffic.summary();
    const unexpected = traffic.records.filter((r) => r.outcome === 'unexpected');
    assert.equal(unexpected.length, 0, JSON.stringify(unexpected.slice(0, 10), null, 1));
    assert.ok(summary.ok > 0.8 * summary.total, JSON.stringify(summary));
    assert.ok(summary.injected_errors > 0, 'faults were injected');

    // the killed engine came back; every backend is routable; the pause evicted nobody
    await waitFor(async () => (await http('GET', `${routerUrl}/stats`)).body.healthy_services === 3, 'three routable backends', 30_000);
    const records = (await http('GET', `${registryUrl}/services`)).body.services;
    assert.equal(records.length, 6, 'three babysitters and their -server records');
    const registryLog = readFileSync(join(dir, 'data', 'logs', 'registry.log'), 'utf8');
    assert.doesNotMatch(registryLog, /removed stale service/);
    const routerLog = readFileSync(join(dir, 'data', 'logs', 'router.log'), 'utf8');
    assert.doesNotMatch(routerLog, /backend removed after grace period/);

    const pids = await Promise.all(ports.map(async (p) => (await http('GET', `http://127.0.0.1:${p + 1}/info`)).body.pid as number));
    up.signal('SIGINT');
    assert.equal((await up.exited).code, 0, up.stdout.slice(-2000));
    for (const pid of [registryPid, ...pids]) assert.equal(pidAlive(pid), false, `pid ${pid} gone`);
  });
});
