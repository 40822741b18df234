import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { FAKE_BACKEND, freePortPair, http, metric, startRegistry, startService, tempDir, waitFor } from './helpers/services.js';

/** The value of one series (exact name and label set, labels in the order prom-client writes them). */
async function series(base: string, line: string): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const hit = text.split('\n').find((l) => l.startsWith(`${line} `));
  return hit === undefined ? undefined : Number(hit.split(' ').pop());
}

/**
 * Lets the `nth` fake backend of this babysitter listen (LISTEN_ON_SIGUSR2) once it says it waits for
 * the signal (before that, SIGUSR2 would kill it): its pid is the one it wrote to `out`.
 */
async function letListen(base: string, out: string, nth: number): Promise<number> {
  await waitFor(async () => {
    const lines: string[] = (await http('GET', `${base}/info`)).body.recent_logs;
    return lines.filter((l) => l === '[stdout] fake backend waiting for SIGUSR2').length >= nth;
  }, `backend ${nth} waiting`);
  const pid = JSON.parse(await readFile(out, 'utf8')).pid as number;
  process.kill(pid, 'SIGUSR2');
  return pid;
}

describe('babysitter: Prometheus /metrics', () => {
  it('labels every series with the name, follows the state, and counts a restart after SIGKILL', async () => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const out = join(await tempDir(), 'tree.json');
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'metered', '--host', '127.0.0.1', '--registry-url', reg.url, '--heartbeat-interval', '0.2',
      '--command', `${process.execPath} ${FAKE_BACKEND}`, '--args', `--port ${port}`, '--env', `OUT_FILE=${out}`, '--env', 'LISTEN_ON_SIGUSR2=1', '--restart-delay', '0.1']);
    const base = sitter.url;

    const first = await fetch(`${base}/metrics`);
    assert.equal(first.status, 200);
    assert.match(first.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await first.text();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      assert.match(line, /^infini_babysitter_/, line);
      assert.match(line, /name="metered"/, line);
    }
    for (const state of ['starting', 'ready', 'not-ready', 'backoff', 'failed', 'stopping', 'stopped']) assert.ok(text.includes(`infini_babysitter_backend_state{state="${state}",name="metered"}`), state);

    // the backend listens only when told: starting until then
    await waitFor(async () => (await series(base, 'infini_babysitter_backend_state{state="starting",name="metered"}')) === 1, 'starting in the metrics');
    assert.equal(await metric(base, 'infini_babysitter_backend_state'), 1, 'exactly one state is 1');
    assert.equal(await series(base, 'infini_babysitter_time_to_ready_seconds_count{name="metered"}'), 0);
    await letListen(base, out, 1);
    await waitFor(async () => (await series(base, 'infini_babysitter_backend_state{state="ready",name="metered"}')) === 1, 'ready in the metrics');
    assert.equal(await metric(base, 'infini_babysitter_backend_state'), 1, 'exactly one state is 1');
    assert.equal(await series(base, 'infini_babysitter_backend_state{state="starting",name="metered"}'), 0);
    assert.equal(await series(base, 'infini_babysitter_time_to_ready_seconds_count{name="metered"}'), 1);
    assert.equal(await series(base, 'infini_babysitter_last_exit_code{name="metered"}'), -1, 'no exit yet');
    assert.ok((await series(base, 'infini_babysitter_backend_uptime_seconds{name="metered"}'))! > 0);
    assert.equal(await metric(base, 'infini_babysitter_restarts_total'), 0);
    await waitFor(async () => (await metric(base, 'infini_babysitter_registrations_total')) >= 2, 'both records registered');
    assert.equal(await metric(base, 'infini_babysitter_registry_failures_total'), 0);

    const pid = (await http('GET', `${base}/info`)).body.pid as number;
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await series(base, 'infini_babysitter_restarts_total{reason="signal",name="metered"}')) === 1, 'a restart after the signal');
    await letListen(base, out, 2);
    await waitFor(async () => (await series(base, 'infini_babysitter_time_to_ready_seconds_count{name="metered"}')) === 2, 'ready again');
    assert.equal(await metric(base, 'infini_babysitter_restarts_total'), 1, 'no other reason counted');
    assert.equal(await series(base, 'infini_babysitter_last_exit_code{name="metered"}'), -1, 'killed by a signal');
    assert.equal(await series(base, 'infini_babysitter_last_exit_signal{signal="SIGKILL",name="metered"}'), 1);

    await Promise.all([sitter.stop(), reg.stop()]);
  });

  it('counts readiness and liveness probe failures of a frozen backend, and a restart for the hang', async () => {
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'frozen', '--service-type', 'mock', '--args', 'm1', '--host', '127.0.0.1',
      '--readiness-interval', '0.1', '--readiness-timeout', '0.2', '--liveness-interval', '0.1', '--liveness-timeout', '0.2', '--liveness-failures', '3', '--stop-grace', '0.5', '--restart-delay', '0.1']);
    const base = sitter.url;
    await waitFor(async () => (await http('GET', `${base}/info`)).body.state === 'ready', 'ready');
    const pid = (await http('GET', `${base}/info`)).body.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor(async () => (await series(base, 'infini_babysitter_restarts_total{reason="hang",name="frozen"}')) === 1, 'a restart for the hang');
    } finally {
      // the group is killed by the babysitter; continuing a gone pid is harmless
      try { process.kill(pid, 'SIGCONT'); } catch { /* already gone */ }
    }
    assert.ok((await series(base, 'infini_babysitter_probe_failures_total{probe="liveness",name="frozen"}'))! >= 3);
    assert.ok((await series(base, 'infini_babysitter_probe_failures_total{probe="readiness",name="frozen"}'))! >= 1);
    assert.equal(await metric(base, 'infini_babysitter_registrations_total'), 0, 'no registry: no registry series');
    await waitFor(async () => (await series(base, 'infini_babysitter_time_to_ready_seconds_count{name="frozen"}'))! >= 2, 'ready again');
    await sitter.stop();
  });
});
