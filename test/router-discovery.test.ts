import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it } from './helpers/test.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePortPair, http, servedBy, startMocks, startService, tempDir, waitFor, type RunningService, startRegistry } from './helpers/services.js';

const chat = (model = 'm') => ({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 });
const routerServices = async (router: RunningService) => (await http('GET', `${router.url}/services`)).body.services as any[];

describe('router: discovery from the registry change feed', () => {
  it('picks up registrations, health changes and deregistrations without polling', async () => {
    const reg = await startRegistry(['--heartbeat-timeout', '0.6']);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--registry-sync-interval', '600', '--health-interval', '600']);
    const mock = (await startMocks([{ models: 'm,feed-model', name: 'feed-mock', args: ['--registry-url', reg.url, '--heartbeat-interval', '0.1'] }]))[0]!;
    await waitFor(async () => (await http('POST', `${router.url}/v1/chat/completions`, { body: chat('feed-model') })).status === 200, 'routing to the new backend');
    const models = await http('GET', `${router.url}/v1/models`);
    assert.deepEqual(models.body.data.map((m: any) => m.id), ['feed-model', 'm']);

    // a record without heartbeats turns unhealthy in the registry, and the router follows
    const silent = (await startMocks([{ models: 'silent-model', name: 'silent' }]))[0]!;
    await http('POST', `${reg.url}/services`, { body: { name: 'silent', host: '127.0.0.1', port: silent.port, hostname: 'x', url: silent.url, status: 'running', metadata: { type: 'openai-api', models: ['silent-model'] } } });
    // non-routable records (a babysitter's own record) are ignored
    await http('POST', `${reg.url}/services`, { body: { name: 'sitter', host: '127.0.0.1', port: 1, hostname: 'x', url: 'http://127.0.0.1:1', status: 'running', metadata: { type: 'command' } } });
    await waitFor(async () => (await routerServices(router)).some((s) => s.name === 'silent' && s.healthy), 'silent discovered');
    assert.ok(!(await routerServices(router)).some((s) => s.name === 'sitter'));
    await waitFor(async () => (await routerServices(router)).some((s) => s.name === 'silent' && !s.healthy && s.listed_healthy === false), 'silent unhealthy after heartbeat expiry');
    const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('silent-model') });
    assert.equal(r.status, 503);

    // graceful mock shutdown deregisters: removed from the router at once
    await mock.stop();
    await waitFor(async () => !(await routerServices(router)).some((s) => s.name === 'feed-mock'), 'deregistered backend removed');
    // its model existed a moment ago (an engine being restarted): retry later (503), not "does not exist" (404)
    const gone = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('feed-model') });
    assert.equal(gone.status, 503);
    assert.equal(gone.body.error.code, 'no_healthy_backend');
    assert.equal(gone.headers.get('retry-after'), '5');
    await Promise.all([router.stop(), reg.stop(), silent.stop()]);
  });

  it('keeps heartbeating backends for many grace periods, and all of them while the registry is stopped', async () => {
    // Heartbeats make no feed events: a backend followed by a live feed must never age out.
    const graceS = 1;
    const reg = await startRegistry();
    const mocks = await startMocks(['a', 'b'].map((x) => ({ models: 'm', name: `long-${x}`, args: ['--registry-url', reg.url, '--heartbeat-interval', '0.2'] })));
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--service-removal-grace-period', String(graceS), '--health-interval', '0.5']);
    await waitFor(async () => (await routerServices(router)).filter((s) => s.healthy).length === 2, 'both discovered');
    /** Routes for `ms` (several grace periods), asserting that every request succeeds on both backends. */
    const routeFor = async (ms: number) => {
      const served = new Set<string>();
      let n = 0;
      for (const until = Date.now() + ms; Date.now() < until; n++) {
        const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
        assert.equal(r.status, 200, `request ${n}: ${r.text}`);
        served.add(servedBy(r.body));
      }
      assert.deepEqual([...served].sort(), ['long-a', 'long-b']);
      assert.equal((await routerServices(router)).length, 2);
      return n;
    };
    await routeFor(5 * graceS * 1000);
    await reg.stop('SIGKILL');
    await waitFor(() => router.logs.some((l) => l.msg === 'registry unreachable; serving the last known list'), 'outage noticed');
    await routeFor(5 * graceS * 1000);
    assert.ok(!router.logs.some((l) => l.msg === 'backend removed after grace period' || l.msg === 'backend removed'), 'nothing was removed');
    await Promise.all([router.stop(), ...mocks.map((m) => m.stop())]);
  });

  it('keeps routing with the last known list while the registry is down, and resyncs after it returns', async () => {
    const reg = await startRegistry();
    const mock = (await startMocks([{ models: 'm', name: 'outage-mock', args: ['--registry-url', reg.url, '--heartbeat-interval', '0.1'] }]))[0]!;
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--service-removal-grace-period', '60']);
    await waitFor(async () => (await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).status === 200, 'initial routing');
    await reg.stop();
    for (let i = 0; i < 5; i++) assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).status, 200);
    await waitFor(() => router.logs.some((l) => l.msg === 'registry unreachable; serving the last known list'), 'outage noticed');
    const again = await startService(['registry', '--port', String(reg.port), '--host', '127.0.0.1', '--no-persist']);
    await waitFor(async () => (await http('GET', `${again.url}/services/outage-mock`)).status === 200, 'mock re-registered');
    for (let i = 0; i < 5; i++) assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).status, 200);
    await Promise.all([router.stop(), mock.stop(), again.stop()]);
  });
});

describe('router: a backend stopped on purpose', () => {
  it('lets the requests it is serving finish there (no retry elsewhere) and sends it no new ones', async () => {
    const reg = await startRegistry();
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--health-interval', '600']);
    const dir = await tempDir();
    const sitters: RunningService[] = [];
    for (const name of ['drain-a', 'drain-b']) {
      const file = join(dir, `${name}.toml`);
      const lines = [`name = "${name}"`, `port = ${await freePortPair()}`, 'host = "127.0.0.1"', `registry_url = "${reg.url}"`, '[babysitter]', 'heartbeat_interval = 0.3', '[backend]', 'type = "mock"', 'models = ["m"]', 'args = ["--itl-ms", "100", "--output-tokens", "15"]'];
      await writeFile(file, `${lines.join('\n')}\n`);
      sitters.push(await startService(['babysitter', '--config-file', file]));
    }
    await waitFor(async () => (await routerServices(router)).filter((s) => s.healthy).length === 2, 'both routable', 20_000);
    // one slow answer (about 1.5 s) under way on drain-a
    let pending: Promise<any> | undefined;
    while (!pending) {
      const r = http('POST', `${router.url}/v1/chat/completions`, { body: { ...chat(), max_tokens: 15 } });
      const onA = await waitFor(async () => (await routerServices(router)).find((s) => s.in_flight > 0)?.name, 'in flight', 5000);
      if (onA === 'drain-a-server') pending = r;
      else await r;
    }
    sitters[0]!.signal('SIGTERM');
    await waitFor(async () => !(await routerServices(router)).find((s) => s.name === 'drain-a-server')?.healthy, 'no longer routable');
    for (let i = 0; i < 3; i++) assert.equal(servedBy((await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).body), 'drain-b-server');
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(servedBy(r.body), 'drain-a-server', 'finished where it ran, not retried elsewhere');
    assert.equal((await sitters[0]!.exited).code, 0);
    await waitFor(async () => !(await routerServices(router)).some((s) => s.name === 'drain-a-server'), 'deregistered after its backend stopped');
    assert.ok(!router.logs.some((l) => l.msg === 'backend down: retrying its waiting requests elsewhere'));
    await Promise.all([router.stop(), reg.stop(), sitters[1]!.stop()]);
  });
});

describe('router: polling fallback for a registry without a change feed', () => {
  it('detects the original registry once, polls ?healthy=true, and removes vanished services after the grace period', async () => {
    const mocks = await startMocks([{ models: 'm', name: 'poll-a' }, { models: 'm', name: 'poll-b' }]);
    const hits: string[] = [];
    let listed = mocks.map((m) => m);
    const original = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/services' || req.url === '/services?healthy=true') {
        const services = listed.map((m) => ({
          name: m.logs.find((l) => l.msg === 'mock listening')!.name,
          host: '127.0.0.1',
          hostname: 'localhost',
          port: m.port,
          url: m.url,
          status: 'running',
          timestamp: '2026-01-01T00:00:00+00:00',
          last_heartbeat: 1,
          health_status: 'unknown',
          is_healthy: true,
          metadata: { type: 'openai-api', models: ['m'] },
        }));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ services, total: services.length, timestamp: '2026-01-01T00:00:00+00:00' }));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => original.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(original.address() as any).port}`;
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', `${url}/`, '--registry-sync-interval', '0.1', '--service-removal-grace-period', '0.8', '--health-interval', '600']);
    await waitFor(async () => (await routerServices(router)).length === 2, 'both discovered');
    await waitFor(() => hits.filter((h) => h === '/services?healthy=true').length >= 3, 'polling');
    assert.equal(hits.filter((h) => h === '/services').length, 1, 'feed support probed once');
    assert.equal(hits.filter((h) => h.startsWith('/events')).length, 0);
    assert.ok(!hits.some((h) => h.startsWith('//')), 'a trailing slash in --registry-url is handled');

    listed = [mocks[0]!];
    const vanishedAt = Date.now();
    // not listed as healthy any more: no longer routed to, but kept (unroutable) for the grace period
    await waitFor(async () => (await routerServices(router)).some((s) => s.name === 'poll-b' && !s.healthy && !s.listed_healthy), 'poll-b unroutable');
    for (let i = 0; i < 4; i++) assert.equal(servedBy((await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).body), 'poll-a');
    await waitFor(async () => (await routerServices(router)).length === 1, 'vanished service removed after the grace period');
    assert.ok(Date.now() - vanishedAt >= 700);
    for (let i = 0; i < 3; i++) assert.equal(servedBy((await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).body), 'poll-a');
    await Promise.all([router.stop(), ...mocks.map((m) => m.stop())]);
    original.close();
  });
});

describe('router: a change feed that goes silent', () => {
  it('is dropped after its idle timeout and the registry listed again, the backends kept meanwhile', async () => {
    // an in-process registry whose feed sends its headers and one comment, then nothing, ever:
    // a connection that died without a close (a partition, a proxy's idle drop)
    const { RegistryWatcher } = await import('../src/router/registry-watcher.js');
    const { BackendSet } = await import('../src/router/backend-set.js');
    const { createLogger } = await import('../src/common/log.js');
    let listings = 0;
    const record = { name: 'quiet-a', host: '127.0.0.1', port: 9, url: 'http://127.0.0.1:9', is_healthy: true, metadata: { type: 'openai-api', models: ['m'] } };
    const fake = createServer((req, res) => {
      if (req.url === '/services') {
        listings++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ services: [record], index: 7, epoch: 'e1' }));
      } else if (req.url?.startsWith('/events?since=7&epoch=e1')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': connected at index 7\n\n');
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const backends = new BackendSet({ connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000 });
    const watcher = new RegistryWatcher(`http://127.0.0.1:${(fake.address() as { port: number }).port}`, backends, { syncIntervalMs: 60_000, graceMs: 60_000, feedIdleMs: 300, log: createLogger('test', 'silent') });
    try {
      await watcher.start();
      assert.equal(watcher.mode, 'feed');
      await waitFor(() => listings >= 3, 'listed again after each silent stretch', 10_000);
      assert.deepEqual(backends.all.map((b) => b.name), ['quiet-a']);
    } finally {
      await watcher.stop();
      await backends.closeAll();
      fake.closeAllConnections();
      fake.close();
    }
  });
});

describe('router: what discovery may remove', () => {
  it('never touches a static service; keeps a metadata.static record through listings that lack it, until it is deregistered', async () => {
    // an in-process registry with a feed the test writes to
    const { RegistryWatcher } = await import('../src/router/registry-watcher.js');
    const { BackendSet } = await import('../src/router/backend-set.js');
    const { createLogger } = await import('../src/common/log.js');
    const record = (name: string, port: number, metadata: Record<string, unknown> = {}) => ({ name, host: '127.0.0.1', port, url: `http://127.0.0.1:${port}`, is_healthy: true, metadata: { type: 'openai-api', models: ['m'], ...metadata } });
    // the registry also has a record named like the static service, at another address
    let listing = [record('file-a', 7), record('kept', 8, { static: true }), record('plain', 9)];
    let feed: import('node:http').ServerResponse | undefined;
    const fake = createServer((req, res) => {
      if (req.url === '/services') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ services: listing, index: 1, epoch: 'e1' }));
      } else if (req.url?.startsWith('/events?since=1&epoch=e1')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': connected\n\n');
        feed = res;
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const send = (event: object) => feed!.write(`data: ${JSON.stringify(event)}\n\n`);
    const backends = new BackendSet({ connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000 });
    backends.upsert({ name: 'file-a', host: '127.0.0.1', port: 6, url: 'http://127.0.0.1:6', weight: 1, metadata: { type: 'openai-api', models: ['m'] }, isStatic: true });
    const watcher = new RegistryWatcher(`http://127.0.0.1:${(fake.address() as { port: number }).port}`, backends, { syncIntervalMs: 60_000, graceMs: 100, log: createLogger('test', 'silent') });
    const names = () => backends.all.map((b) => b.name);
    try {
      await watcher.start();
      assert.deepEqual(names(), ['file-a', 'kept', 'plain']);
      assert.equal(backends.get('file-a')!.url, 'http://127.0.0.1:6', "the registry's record does not change a static service");
      assert.deepEqual(backends.all.map((b) => b.info(Date.now()).static), [true, true, false]);

      // a listing without any of them (the registry lost its records): all three miss the same listing
      await waitFor(() => feed, 'feed followed');
      listing = [];
      const first = feed!;
      send({ index: 2, type: 'reset' });
      await waitFor(() => feed !== first && !names().includes('plain'), 'plain removed after the grace period');
      assert.deepEqual(names(), ['file-a', 'kept']);

      // deregistrations: the static service stays, the metadata.static record goes (events apply in order)
      send({ index: 2, type: 'delete', service: { name: 'file-a' } });
      send({ index: 3, type: 'delete', service: { name: 'kept' } });
      await waitFor(() => !names().includes('kept'), 'kept removed on its deregistration');
      assert.deepEqual(names(), ['file-a']);
    } finally {
      await watcher.stop();
      await backends.closeAll();
      fake.closeAllConnections();
      fake.close();
    }
  });
});
