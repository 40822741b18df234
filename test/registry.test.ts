import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from './helpers/test.js';
import { http, SseReader, startService, spawnCli, tempDir, waitFor, type RunningService, startRegistry } from './helpers/services.js';

function service(name: string, extra: Record<string, unknown> = {}) {
  return { name, host: '127.0.0.1', port: 9000, hostname: '127.0.0.1', url: 'http://127.0.0.1:9000', status: 'running', ...extra };
}


describe('registry API', () => {
  let reg: RunningService;
  before(async () => {
    reg = await startRegistry();
  });
  after(() => reg.stop());

  it('answers /health with counts and an RFC 3339 timestamp', async () => {
    const r = await http('GET', `${reg.url}/health`);
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'healthy');
    assert.equal(r.body.registry, 'running');
    assert.equal(typeof r.body.registered_services, 'number');
    assert.match(r.body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);
  });

  it('registers with exactly 201 and returns the record shape of the original', async () => {
    const before = Date.now() / 1000;
    const r = await http('POST', `${reg.url}/services`, { body: service('shape-a', { metadata: { type: 'openai-api', models: ['m1'] } }) });
    assert.equal(r.status, 201);
    assert.equal(r.body.message, "Service 'shape-a' registered successfully");
    const s = r.body.service;
    assert.deepEqual(Object.keys(s).sort(), ['health_status', 'host', 'hostname', 'is_healthy', 'last_heartbeat', 'metadata', 'name', 'port', 'status', 'timestamp', 'url']);
    assert.equal(s.health_status, 'unknown');
    assert.equal(s.is_healthy, true);
    assert.ok(s.last_heartbeat >= before - 1 && s.last_heartbeat <= Date.now() / 1000 + 1);
    assert.deepEqual(s.metadata, { type: 'openai-api', models: ['m1'] });
    const got = await http('GET', `${reg.url}/services/shape-a`);
    assert.equal(got.status, 200);
    assert.equal(got.body.name, 'shape-a');
  });

  it('reads a JSON body whatever the Content-Type says (curl -d)', async () => {
    const r = await http('POST', `${reg.url}/services`, {
      body: JSON.stringify(service('form-typed')),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(r.status, 201);
  });

  it('re-registering a name replaces the record', async () => {
    await http('POST', `${reg.url}/services`, { body: service('replace-me', { port: 9001, metadata: { a: 1 } }) });
    const r = await http('POST', `${reg.url}/services`, { body: service('replace-me', { port: 9002 }) });
    assert.equal(r.status, 201);
    const got = await http('GET', `${reg.url}/services/replace-me`);
    assert.equal(got.body.port, 9002);
    assert.deepEqual(got.body.metadata, {});
  });

  it('filters by status and healthy, ignoring an empty healthy=', async () => {
    await http('POST', `${reg.url}/services`, { body: service('filter-run') });
    await http('POST', `${reg.url}/services`, { body: service('filter-stopped', { status: 'stopped' }) });
    const all = await http('GET', `${reg.url}/services`);
    assert.equal(all.status, 200);
    assert.equal(all.body.total, all.body.services.length);
    assert.equal(typeof all.body.index, 'number');
    const names = (r: any) => r.body.services.map((s: any) => s.name);
    const stopped = await http('GET', `${reg.url}/services?status=stopped`);
    assert.deepEqual(names(stopped), ['filter-stopped']);
    const healthy = await http('GET', `${reg.url}/services?healthy=true`);
    assert.ok(names(healthy).includes('filter-run'));
    assert.ok(!names(healthy).includes('filter-stopped'));
    const unhealthy = await http('GET', `${reg.url}/services?healthy=false`);
    assert.ok(names(unhealthy).includes('filter-stopped'));
    assert.ok(!names(unhealthy).includes('filter-run'));
    const empty = await http('GET', `${reg.url}/services?healthy=`);
    assert.equal(empty.body.total, all.body.total);
    const both = await http('GET', `${reg.url}/services?status=stopped&healthy=TRUE`);
    assert.equal(both.body.total, 0);
  });

  it('updates partially with PUT, replacing metadata wholesale', async () => {
    await http('POST', `${reg.url}/services`, { body: service('upd', { metadata: { a: 1, b: 2 } }) });
    const r = await http('PUT', `${reg.url}/services/upd`, { body: { port: 9100, metadata: { c: 3 } } });
    assert.equal(r.status, 200);
    assert.equal(r.body.message, "Service 'upd' updated successfully");
    assert.equal(r.body.service.port, 9100);
    assert.deepEqual(r.body.service.metadata, { c: 3 });
    assert.equal(r.body.service.url, 'http://127.0.0.1:9000');
    const missing = await http('PUT', `${reg.url}/services/nope`, { body: { port: 1 } });
    assert.equal(missing.status, 404);
    assert.match(missing.body.error, /nope/);
  });

  it('deletes and answers 404 afterwards', async () => {
    await http('POST', `${reg.url}/services`, { body: service('del-me') });
    const r = await http('DELETE', `${reg.url}/services/del-me`);
    assert.equal(r.status, 200);
    assert.equal(r.body.message, "Service 'del-me' unregistered successfully");
    assert.equal((await http('GET', `${reg.url}/services/del-me`)).status, 404);
    assert.equal((await http('DELETE', `${reg.url}/services/del-me`)).status, 404);
  });

  it('heartbeats with no body, with a status, and 404s an unknown name', async () => {
    await http('POST', `${reg.url}/services`, { body: service('hb') });
    const plain = await fetch(`${reg.url}/services/hb/heartbeat`, { method: 'POST' });
    assert.equal(plain.status, 200);
    assert.equal(((await plain.json()) as any).message, 'Heartbeat received');
    const garbage = await http('POST', `${reg.url}/services/hb/heartbeat`, { body: 'not json at all' });
    assert.equal(garbage.status, 200);
    const withStatus = await http('POST', `${reg.url}/services/hb/heartbeat`, { body: { status: 'stopped' } });
    assert.equal(withStatus.status, 200);
    const got = await http('GET', `${reg.url}/services/hb`);
    assert.equal(got.body.status, 'stopped');
    assert.equal(got.body.is_healthy, false);
    const badType = await http('POST', `${reg.url}/services/hb/heartbeat`, { body: { status: 7 } });
    assert.equal(badType.status, 400);
    assert.match(badType.body.error, /status/);
    const unknown = await http('POST', `${reg.url}/services/ghost/heartbeat`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.error, /ghost/);
  });

  it('reports /stats distributions', async () => {
    const r = await http('GET', `${reg.url}/stats`);
    assert.equal(r.status, 200);
    assert.equal(r.body.total_services, r.body.healthy_services + r.body.unhealthy_services);
    assert.equal(typeof r.body.status_distribution.running, 'number');
    assert.equal(typeof r.body.host_distribution['127.0.0.1'], 'number');
    assert.ok(Number.isInteger(r.body.uptime));
  });

  it('names the problem in every error', async () => {
    const cases: Array<[unknown, RegExp]> = [
      ['{"name":', /invalid JSON/],
      [[1, 2], /JSON object/],
      [{ ...service('x'), port: 'abc' }, /'port'/],
      [{ ...service('x'), port: 70000 }, /'port'/],
      [{ ...service('x'), port: 80.5 }, /'port'/],
      [{ ...service('x'), url: 'ftp://x' }, /'url'/],
      [{ ...service('x'), name: 'bad name!' }, /'name'/],
      [{ ...service('x'), name: '' }, /'name'/],
      [{ ...service('x'), metadata: [1] }, /'metadata'/],
      [{ ...service('x'), metadata: 'str' }, /'metadata'/],
      [{ ...service('x'), status: undefined }, /missing required field 'status'/],
      [{ ...service('x'), host: undefined }, /missing required field 'host'/],
    ];
    for (const [body, pattern] of cases) {
      const r = await http('POST', `${reg.url}/services`, { body: typeof body === 'string' ? body : JSON.stringify(body) });
      assert.equal(r.status, 400, `body ${JSON.stringify(body)}`);
      assert.match(r.body.error, pattern, `body ${JSON.stringify(body)}`);
    }
    const unknownPath = await http('GET', `${reg.url}/nothing-here`);
    assert.equal(unknownPath.status, 404);
    assert.ok(unknownPath.body.error);
    const wrongMethod = await http('PATCH', `${reg.url}/services/x`);
    assert.equal(wrongMethod.status, 405);
    assert.match(wrongMethod.body.error, /PATCH/);
    const wrongMethod2 = await http('DELETE', `${reg.url}/health`);
    assert.equal(wrongMethod2.status, 405);
  });

  it('accepts metadata up to 256 KiB and rejects more', async () => {
    const models = Array.from({ length: 2000 }, (_, i) => ({ id: `model-${i}`, object: 'model', created: 1770714000, owned_by: 'infini' }));
    const ok = await http('POST', `${reg.url}/services`, { body: service('big-meta', { metadata: { models_list: models } }) });
    assert.equal(ok.status, 201);
    const tooBig = await http('POST', `${reg.url}/services`, { body: service('too-big-meta', { metadata: { blob: 'x'.repeat(300 * 1024) } }) });
    assert.equal(tooBig.status, 400);
    assert.match(tooBig.body.error, /'metadata'/);
  });

  it('answers 413 with JSON to a body over 1 MiB and keeps serving', async () => {
    const huge = JSON.stringify(service('huge', { metadata: { blob: 'y'.repeat(2 * 1024 * 1024) } }));
    const r = await http('POST', `${reg.url}/services`, { body: huge });
    assert.equal(r.status, 413);
    assert.match(r.body.error, /limit/);
    assert.equal((await http('GET', `${reg.url}/services/huge`)).status, 404);
    assert.equal((await http('GET', `${reg.url}/health`)).status, 200);
  });

  it('survives hundreds of malformed requests without changing state', async () => {
    const snapshot = async () => {
      const r = await http('GET', `${reg.url}/services`);
      return r.body.services.map((s: any) => ({ ...s, last_heartbeat: 0, is_healthy: 0, health_status: 0 }));
    };
    const beforeState = await snapshot();
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const junkValues: unknown[] = [null, true, 0, -1, 1e308, 65536, 'x', '', [], {}, [null], { a: [] }, 'http://', '\u0000', 'ü'.repeat(300)];
    // Values that are invalid for each field, so every fuzzed registration must be refused.
    const invalidFor: Record<string, unknown[]> = {
      name: [null, 0, '', 'bad name', 'a/b', [], {}, 'a'.repeat(300)],
      host: [null, 0, '', [], {}, true],
      port: [null, 'x', '80', 0, -1, 1.5, 65536, 1e308, [], {}],
      hostname: [null, 0, [], {}, false],
      url: [null, 0, '', 'ftp://x', 'http://', 'localhost:80', []],
      status: [null, 0, [], {}, true],
      metadata: [null, 0, 'x', [], [null], true],
    };
    const bodies: string[] = [];
    for (let i = 0; i < 300; i++) {
      const kind = i % 4;
      if (kind === 0) {
        bodies.push(Array.from({ length: Math.floor(rand() * 40) }, () => String.fromCharCode(Math.floor(rand() * 256))).join(''));
      } else if (kind === 1) {
        bodies.push(JSON.stringify(pick(junkValues.filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)))));
      } else {
        const b: Record<string, unknown> = service(`fuzz-${i}`);
        const key = pick(Object.keys(invalidFor));
        b[key] = pick(invalidFor[key]!);
        bodies.push(JSON.stringify(b));
      }
    }
    const paths = [['POST', '/services'], ['PUT', '/services/ghost'], ['POST', '/services/ghost/heartbeat'], ['PUT', '/services/%E0%A4%A'], ['POST', '/services/%zz/heartbeat']];
    for (const body of bodies) {
      const [method, path] = pick(paths);
      const r = await http(method!, `${reg.url}${path}`, { body });
      assert.ok([400, 404].includes(r.status), `${method} ${path} ${body} -> ${r.status} ${r.text}`);
      assert.ok(r.body && typeof r.body.error === 'string', `error JSON for ${body}`);
    }
    assert.ok(reg.alive);
    assert.deepEqual(await snapshot(), beforeState);
  });
});

describe('registry liveness: heartbeat expiry, stale removal, background probes', () => {
  let reg: RunningService;
  let backend: Server;
  let backendPort = 0;
  let hang: Server;
  let hangPort = 0;
  before(async () => {
    backend = createServer((req, res) => {
      res.writeHead(req.url === '/health' ? 200 : 404);
      res.end();
    });
    hang = createServer(() => {
      // never answers: a probe must time out without blocking anything
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    backendPort = (backend.address() as any).port;
    hangPort = (hang.address() as any).port;
    reg = await startService([
      'registry', '--port', '0', '--host', '127.0.0.1', '--no-persist',
      '--heartbeat-timeout', '0.6', '--stale-timeout', '1.5', '--cleanup-interval', '0.2',
      '--health-interval', '0.2', '--health-timeout', '0.5',
    ]);
  });
  after(async () => {
    await reg.stop();
    hang.closeAllConnections();
    await new Promise((r) => backend.close(r));
    await new Promise((r) => hang.close(r));
  });

  it('turns unhealthy without heartbeats, recovers with one, and is removed when stale', async () => {
    await http('POST', `${reg.url}/services`, { body: service('quiet') });
    await waitFor(async () => (await http('GET', `${reg.url}/services/quiet`)).body.is_healthy === false, 'quiet to become unhealthy');
    assert.equal((await http('POST', `${reg.url}/services/quiet/heartbeat`)).status, 200);
    assert.equal((await http('GET', `${reg.url}/services/quiet`)).body.is_healthy, true);
    await waitFor(async () => (await http('GET', `${reg.url}/services/quiet`)).status === 404, 'quiet to be removed');
    assert.ok(reg.logs.some((l) => l.msg === 'removed stale service' && l.service === 'quiet'));
  });

  it('keeps a service that heartbeats', async () => {
    await http('POST', `${reg.url}/services`, { body: service('chatty') });
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      assert.equal((await http('POST', `${reg.url}/services/chatty/heartbeat`)).status, 200);
      assert.equal((await http('GET', `${reg.url}/services/chatty`)).body.is_healthy, true);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it('probes in the background (health_status only), bounded by the timeout, never blocking the API', async () => {
    const url = `http://127.0.0.1:${backendPort}`;
    await http('POST', `${reg.url}/services`, { body: service('probed-ok', { port: backendPort, url }) });
    // openai-api records are probed at host:port+1 (the babysitter); nothing listens there.
    await http('POST', `${reg.url}/services`, { body: service('probed-api', { port: backendPort, url, metadata: { type: 'openai-api' } }) });
    await http('POST', `${reg.url}/services`, { body: service('probed-hang', { port: hangPort, url: `http://127.0.0.1:${hangPort}` }) });
    const keepAlive = setInterval(() => {
      for (const n of ['probed-ok', 'probed-api', 'probed-hang']) void http('POST', `${reg.url}/services/${n}/heartbeat`).catch(() => undefined);
    }, 100);
    try {
      await waitFor(async () => (await http('GET', `${reg.url}/services/probed-ok`)).body.health_status === 'healthy', 'probed-ok healthy');
      await waitFor(async () => (await http('GET', `${reg.url}/services/probed-api`)).body.health_status === 'unhealthy', 'probed-api unhealthy');
      await waitFor(async () => (await http('GET', `${reg.url}/services/probed-hang`)).body.health_status === 'unhealthy', 'probed-hang unhealthy');
      const t0 = Date.now();
      assert.equal((await http('GET', `${reg.url}/health`)).status, 200);
      assert.ok(Date.now() - t0 < 400, 'the API answers while a probe hangs');
      const hung = await http('GET', `${reg.url}/services/probed-hang`);
      assert.equal(hung.body.is_healthy, true, 'probes never change heartbeat-based liveness');
    } finally {
      clearInterval(keepAlive);
    }
  });

  it('on-demand probe sets health_status without refreshing last_heartbeat', async () => {
    const url = `http://127.0.0.1:${backendPort}`;
    await http('POST', `${reg.url}/services`, { body: service('on-demand', { port: backendPort, url }) });
    const before = (await http('GET', `${reg.url}/services/on-demand`)).body.last_heartbeat;
    await new Promise((r) => setTimeout(r, 20));
    const r = await http('GET', `${reg.url}/services/on-demand/health`);
    assert.equal(r.status, 200);
    assert.equal(r.body.service, 'on-demand');
    assert.equal(r.body.health_status, 'healthy');
    assert.equal(r.body.last_heartbeat, before);
    assert.equal((await http('GET', `${reg.url}/services/absent/health`)).status, 404);
  });
});

describe('registry change feed', () => {
  let reg: RunningService;
  before(async () => {
    reg = await startRegistry(['--heartbeat-timeout', '0.5', '--stale-timeout', '60']);
  });
  after(() => reg.stop());

  it('lists with an index, then follows changes from it without a gap', async () => {
    await http('POST', `${reg.url}/services`, { body: service('feed-a') });
    const list = await http('GET', `${reg.url}/services`);
    const index = list.body.index as number;
    await http('POST', `${reg.url}/services`, { body: service('feed-b') });
    const feed = await SseReader.open(`${reg.url}/events?since=${index}`);
    try {
      const first = await feed.next();
      assert.equal(first.type, 'put');
      assert.equal(first.service.name, 'feed-b');
      assert.equal(first.index, index + 1);
      await http('DELETE', `${reg.url}/services/feed-a`);
      const del = await feed.next((e) => e.type === 'delete');
      assert.equal(del.service.name, 'feed-a');
      assert.equal(del.index, index + 2);
    } finally {
      feed.close();
    }
  });

  it('tells a watcher of another run of the feed (epoch) to list again, even at a reachable index', async () => {
    // a restarted registry reuses the indexes of events it never saved (health flips) for other
    // changes: a watcher naming the epoch it listed in must not take them for what it missed
    const list = await http('GET', `${reg.url}/services`);
    assert.match(list.body.epoch, /^[0-9a-f]{12}$/);
    const index = list.body.index as number;
    await http('POST', `${reg.url}/services`, { body: service('feed-epoch') });
    const same = await SseReader.open(`${reg.url}/events?since=${index}&epoch=${list.body.epoch}`);
    const other = await SseReader.open(`${reg.url}/events?since=${index}&epoch=0123456789ab`);
    try {
      assert.equal((await same.next()).service.name, 'feed-epoch');
      assert.deepEqual(await other.next(), { index: index + 1, type: 'reset' });
    } finally {
      same.close();
      other.close();
      // silent records count towards the registry's mass-expiry guard of the next test
      await http('DELETE', `${reg.url}/services/feed-epoch`);
    }
  });

  it('emits health events when heartbeats expire and resume, on a timer', async () => {
    const feed = await SseReader.open(`${reg.url}/events`);
    try {
      await http('POST', `${reg.url}/services`, { body: service('feed-hb') });
      const put = await feed.next((e) => e.service?.name === 'feed-hb');
      assert.equal(put.type, 'put');
      const down = await feed.next((e) => e.type === 'health' && e.service.name === 'feed-hb');
      assert.equal(down.service.is_healthy, false);
      await http('POST', `${reg.url}/services/feed-hb/heartbeat`);
      const up = await feed.next((e) => e.type === 'health' && e.service.name === 'feed-hb');
      assert.equal(up.service.is_healthy, true);
      assert.ok(up.index > down.index);
    } finally {
      feed.close();
    }
  });

  it('sends reset for an index outside the backlog and rejects a bad since', async () => {
    const feed = await SseReader.open(`${reg.url}/events?since=999999`);
    try {
      const reset = await feed.next();
      assert.equal(reset.type, 'reset');
      assert.equal(typeof reset.index, 'number');
    } finally {
      feed.close();
    }
    const bad = await http('GET', `${reg.url}/events?since=abc`);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /since/);
  });
});

describe('registry persistence', () => {
  it('restores records after a restart; reloaded services count as heard from at start', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'state.json');
    const args = ['registry', '--port', '0', '--host', '127.0.0.1', '--state-file', stateFile, '--heartbeat-timeout', '1'];
    const first = await startService(args);
    for (const n of ['p1', 'p2', 'p3']) await http('POST', `${first.url}/services`, { body: service(n, { metadata: { type: 'openai-api', models: [n] } }) });
    await http('DELETE', `${first.url}/services/p3`);
    const indexBefore = (await http('GET', `${first.url}/services`)).body.index;
    // let the heartbeats age so a naive reload would already consider them dead
    await waitFor(async () => (await http('GET', `${first.url}/services/p1`)).body.is_healthy === false, 'p1 to age');
    const stopped = await first.stop('SIGTERM');
    assert.equal(stopped.code, 0);
    const saved = JSON.parse(await readFile(stateFile, 'utf8'));
    assert.deepEqual(saved.services.map((s: any) => s.name).sort(), ['p1', 'p2']);

    const second = await startService(args);
    try {
      const list = await http('GET', `${second.url}/services`);
      assert.deepEqual(list.body.services.map((s: any) => s.name), ['p1', 'p2']);
      assert.ok(list.body.services.every((s: any) => s.is_healthy === true));
      assert.deepEqual(list.body.services[0].metadata, { type: 'openai-api', models: ['p1'] });
      assert.equal(list.body.index, indexBefore, 'the feed index continues across restarts');
      assert.equal((await http('POST', `${second.url}/services/p1/heartbeat`)).status, 200);
    } finally {
      await second.stop();
    }
  });

  it('shuts down promptly on SIGINT, flushing state and freeing the port', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'nested', 'state.json');
    const reg = await startService(['registry', '--port', '0', '--host', '127.0.0.1', '--state-file', stateFile]);
    await http('POST', `${reg.url}/services`, { body: service('flushed') });
    const feed = await SseReader.open(`${reg.url}/events`);
    const result = await reg.stop('SIGINT');
    feed.close();
    assert.equal(result.code, 0);
    const saved = JSON.parse(await readFile(stateFile, 'utf8'));
    assert.equal(saved.services[0].name, 'flushed');
    const again = await startService(['registry', '--port', String(reg.port), '--host', '127.0.0.1', '--no-persist']);
    assert.equal(again.port, reg.port);
    await again.stop();
  });

  it('--no-persist writes nothing and starts empty', async () => {
    const dir = await tempDir();
    const reg = await startRegistry([], { cwd: dir });
    await http('POST', `${reg.url}/services`, { body: service('volatile') });
    await reg.stop();
    await assert.rejects(readFile(join(dir, 'infini-registry-state.json')));
  });

  it('refuses a corrupt state file with one line naming it', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'state.json');
    await writeFile(stateFile, '{"services": [oops');
    const reg = spawnCli(['registry', '--port', '0', '--state-file', stateFile]);
    const { code } = await reg.exited;
    assert.equal(code, 2);
    assert.match(reg.stderrText, new RegExp(`state file ${stateFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid JSON`));
    assert.equal(reg.stderrText.trim().split('\n').length, 1);
  });
});

describe('registry auth', () => {
  let reg: RunningService;
  before(async () => {
    reg = await startRegistry([], { env: { INFINI_REGISTRY_TOKEN: 's3cret' } });
  });
  after(() => reg.stop());

  it('needs the bearer token for mutations and keeps reads open', async () => {
    const none = await http('POST', `${reg.url}/services`, { body: service('auth-a') });
    assert.equal(none.status, 401);
    assert.ok(none.body.error);
    const wrong = await http('POST', `${reg.url}/services`, { body: service('auth-a'), headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 403);
    const ok = await http('POST', `${reg.url}/services`, { body: service('auth-a'), headers: { authorization: 'Bearer s3cret' } });
    assert.equal(ok.status, 201);
    assert.equal((await http('POST', `${reg.url}/services/auth-a/heartbeat`)).status, 401);
    assert.equal((await http('PUT', `${reg.url}/services/auth-a`, { body: { port: 2 } })).status, 401);
    assert.equal((await http('DELETE', `${reg.url}/services/auth-a`, { headers: { authorization: 'Bearer x' } })).status, 403);
    assert.equal((await http('POST', `${reg.url}/services/auth-a/heartbeat`, { headers: { authorization: 'Bearer s3cret' } })).status, 200);
    assert.equal((await http('GET', `${reg.url}/services`)).status, 200);
    assert.equal((await http('GET', `${reg.url}/services/auth-a`)).status, 200);
  });
});

describe('registry CLI', () => {
  it('has --help, --version and one-line usage errors', async () => {
    const help = spawnCli(['registry', '--help']);
    assert.equal((await help.exited).code, 0);
    assert.match(help.stdout, /--heartbeat-timeout/);
    const version = spawnCli(['registry', '--version']);
    assert.equal((await version.exited).code, 0);
    assert.match(version.stdout, /\d+\.\d+\.\d+/);
    const bad = spawnCli(['registry', '--port', 'eighty']);
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.stderrText, /--port/);
    const level = spawnCli(['registry', '--log-level', 'loud']);
    assert.equal((await level.exited).code, 2);
    assert.match(level.stderrText, /--log-level/);
  });

  it('reports a port in use clearly', async () => {
    const first = await startRegistry();
    const second = spawnCli(['registry', '--port', String(first.port), '--host', '127.0.0.1', '--no-persist']);
    assert.equal((await second.exited).code, 2);
    assert.match(second.stderrText, new RegExp(`port ${first.port}.*already in use`));
    await first.stop();
  });
});
