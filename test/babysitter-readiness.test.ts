// A hung engine must stop receiving new requests within the readiness bound (interval + timeout):
// the babysitter's /health turns 503 and its -server record stops being "running" (is_healthy false
// in the registry's feed), comes back when the engine answers again, and liveness still restarts an
// engine that stays hung (issue 12, fault 4). Timers are shortened and the tests run for many
// multiples of them.
import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { freePortPair, http, pidAlive, SseReader, startRegistry, startService, waitFor, type RunningService } from './helpers/services.js';

const info = async (b: RunningService) => (await http('GET', `${b.url}/info`)).body;
const count = (s: RunningService, msg: string) => s.logs.filter((l) => l.msg === msg).length;
const record = async (regUrl: string, name: string) => {
  const r = await http('GET', `${regUrl}/services/${name}`);
  return r.status === 200 ? r.body : undefined;
};

describe('babysitter: readiness while running', () => {
  it('a frozen engine is unroutable within the readiness bound; liveness later restarts it', { timeout: 90_000 }, async (t) => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'frozen', '--service-type', 'mock', '--args', 'm1', '--host', '127.0.0.1', '--registry-url', reg.url,
      '--heartbeat-interval', '0.3', '--readiness-interval', '0.2', '--readiness-timeout', '0.5', '--liveness-interval', '2', '--liveness-timeout', '0.5', '--liveness-failures', '2', '--restart-delay', '0.1', '--stop-grace', '0.5']);
    await waitFor(async () => (await record(reg.url, 'frozen-server'))?.is_healthy === true, 'registered and healthy');
    const before = await http('GET', `${reg.url}/services`);
    const feed = await SseReader.open(`${reg.url}/events?since=${before.body.index}`);
    try {
      const firstPid = (await info(sitter)).pid;
      const frozenAt = Date.now();
      await fetch(`http://127.0.0.1:${port}/health`, { headers: { 'x-mock-freeze': '1' }, signal: AbortSignal.timeout(200) }).catch(() => undefined);

      const put = await feed.next((e) => e.service?.name === 'frozen-server' && e.type === 'put', 10_000);
      const detectedMs = Date.now() - frozenAt;
      t.diagnostic(`frozen engine unroutable in the registry feed after ${detectedMs} ms (bound: interval 0.2 s + timeout 0.5 s)`);
      assert.equal(put.service.status, 'not-ready');
      assert.equal(put.service.is_healthy, false);
      const h = await http('GET', `${sitter.url}/health`);
      assert.equal(h.status, 503);
      assert.equal(h.body.status, 'not-ready');
      assert.match(h.body.reason, /no answer within 0\.5 s/);
      const i = await info(sitter);
      assert.equal(i.state, 'not-ready');
      assert.equal(i.pid, firstPid, 'not ready is not a restart');

      // liveness (2 failures 2 s apart) restarts it; until then it is never routable again
      const states = new Set<string>();
      const back = await waitFor(async () => {
        const r = await record(reg.url, 'frozen-server');
        if (r?.status === 'running') return r;
        const j = await info(sitter);
        if (j.restart_count === 0) states.add(j.state);
        return undefined;
      }, 'restarted and running again', 20_000);
      assert.ok(!states.has('ready'), `states before the restart: ${[...states]}`);
      assert.equal(back.is_healthy, true);
      const j = await info(sitter);
      assert.equal(j.restart_count, 1);
      assert.equal(j.last_down_reason, 'hung');
      assert.notEqual(j.pid, firstPid);
      assert.equal(pidAlive(firstPid), false);
      assert.equal(count(sitter, 'backend ready again'), 0, 'a hung engine never looked ready again before its restart');
      // the feed saw: not-ready, then the record removed (down), then registered running again
      const del = await feed.next((e) => e.service?.name === 'frozen-server' && e.type === 'delete');
      const again = await feed.next((e) => e.service?.name === 'frozen-server' && e.type === 'put');
      assert.ok(del.index > put.index && again.index > del.index);
      assert.equal(again.service.status, 'running');
    } finally {
      feed.close();
    }
    await Promise.all([sitter.stop(), reg.stop()]);
  });

  it('a paused engine turns not-ready and comes back to running when it answers again, without flapping', { timeout: 90_000 }, async (t) => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'paused', '--service-type', 'mock', '--args', 'm1', '--host', '127.0.0.1', '--registry-url', reg.url,
      // a 1 s timeout: a loaded machine must not make a healthy mock flap (the counts below are exact)
      '--heartbeat-interval', '0.2', '--readiness-interval', '0.2', '--readiness-timeout', '1']);
    await waitFor(async () => (await record(reg.url, 'paused-server'))?.is_healthy === true, 'registered and healthy');
    const engine = (await info(sitter)).pid as number;
    let stopped = false;
    try {
      process.kill(engine, 'SIGSTOP');
      stopped = true;
      const pausedAt = Date.now();
      await waitFor(async () => (await http('GET', `${sitter.url}/health`)).status === 503, '503 while paused', 10_000);
      const rec = await waitFor(async () => {
        const r = await record(reg.url, 'paused-server');
        return r?.status === 'not-ready' ? r : undefined;
      }, 'record not running', 10_000);
      t.diagnostic(`paused engine unroutable after ${Date.now() - pausedAt} ms (bound: 0.2 s + 1 s)`);
      assert.equal(rec.is_healthy, false);
      // paused through many readiness and heartbeat intervals: stays not-ready, never restarted
      await waitFor(async () => (await info(sitter)).readiness_failures >= 8, 'many failed probes', 20_000);
      assert.equal((await record(reg.url, 'paused-server'))?.status, 'not-ready', 'heartbeats keep the status');
      process.kill(engine, 'SIGCONT');
      stopped = false;
      await waitFor(async () => (await http('GET', `${sitter.url}/health`)).status === 200, 'ready again', 10_000);
      await waitFor(async () => (await record(reg.url, 'paused-server'))?.is_healthy === true, 'running and healthy again', 10_000);
    } finally {
      if (stopped) process.kill(engine, 'SIGCONT');
    }
    // many more intervals: one transition each way, record running throughout
    const seen = new Set<number>();
    const off: string[] = [];
    await waitFor(async () => {
      const r = await record(reg.url, 'paused-server');
      if (r?.status !== 'running') off.push(String(r?.status));
      else seen.add(r.last_heartbeat);
      return seen.size > 10 || off.length > 0;
    }, 'ten more heartbeats', 30_000);
    assert.deepEqual(off, [], 'running throughout');
    const i = await info(sitter);
    assert.equal(i.state, 'ready');
    assert.equal(i.restart_count, 0);
    assert.equal(i.pid, engine);
    assert.equal(count(sitter, 'backend not ready'), 1);
    assert.equal(count(sitter, 'backend ready again'), 1);
    assert.equal(count(sitter, 'backend ready'), 1);
    await Promise.all([sitter.stop(), reg.stop()]);
  });

  it('a declared hang removes the record at once, not after the stop grace', { timeout: 60_000 }, async () => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'hung', '--service-type', 'mock', '--args', 'm1', '--host', '127.0.0.1', '--registry-url', reg.url,
      '--heartbeat-interval', '0.3', '--readiness-interval', '0.2', '--readiness-timeout', '0.5', '--liveness-interval', '0.3', '--liveness-timeout', '0.5', '--liveness-failures', '2', '--stop-grace', '10', '--restart-delay', '0.1']);
    await waitFor(async () => (await record(reg.url, 'hung-server'))?.is_healthy === true, 'registered and healthy');
    const engine = (await info(sitter)).pid as number;
    // stopped, it cannot answer and its SIGTERM stays pending: only the SIGKILL after the grace ends it
    process.kill(engine, 'SIGSTOP');
    await sitter.waitForLog((l) => l.msg === 'backend hung: restarting it');
    await waitFor(async () => (await http('GET', `${reg.url}/services/hung-server`)).status === 404, 'record removed', 8000);
    assert.ok(pidAlive(engine), 'the record went before the engine: still inside the 10 s stop grace');
    const h = await http('GET', `${sitter.url}/health`);
    assert.equal(h.status, 503);
    assert.equal(h.body.status, 'stopping');
    assert.equal(h.body.reason, 'hung');
    await waitFor(async () => (await record(reg.url, 'hung-server'))?.status === 'running', 'restarted and registered', 20_000);
    assert.equal(pidAlive(engine), false);
    assert.equal((await info(sitter)).restart_count, 1);
    await Promise.all([sitter.stop(), reg.stop()]);
  });
});
