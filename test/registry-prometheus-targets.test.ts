/**
 * GET /prometheus/targets: the registry's records as Prometheus http_sd target groups (labels for
 * relabeling by role), from a per-index cache, open to reads like GET /services.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from './helpers/test.js';
import { http, startRegistry, type RunningService } from './helpers/services.js';
import { EmbeddedStore } from '../src/registry/embedded-store.js';
import { LivenessClock, PAUSE_TICK_MS } from '../src/registry/liveness-clock.js';
import { PrometheusTargets, targetAddress, targetGroup, targetRole } from '../src/registry/prometheus-targets.js';
import type { Registration } from '../src/registry/record.js';

/** The two records a babysitter named `gpu-0` on port 8100 registers (see src/babysitter/cli.ts). */
const sitter = (name = 'gpu-0', port = 8100): Registration => ({
  name,
  host: '10.0.0.5',
  hostname: '10.0.0.5',
  port: port + 1,
  url: `http://10.0.0.5:${port + 1}`,
  status: 'running',
  metadata: { type: 'vllm', babysitter: 'enhanced' },
});
const engine = (parent = 'gpu-0', port = 8100): Registration => ({
  name: `${parent}-server`,
  host: '10.0.0.5',
  hostname: '10.0.0.5',
  port,
  url: `http://10.0.0.5:${port}`,
  status: 'running',
  metadata: { type: 'openai-api', parent_service: parent, babysitter: 'enhanced', models: ['llama-3', 'qwen'], models_list: [{ id: 'llama-3' }, { id: 'qwen' }] },
});

describe('prometheus targets: one record', () => {
  it('labels a babysitter, its engine and any other record by role', () => {
    assert.deepEqual(targetGroup(sitter(), true), {
      targets: ['10.0.0.5:8101'],
      labels: {
        __meta_infini_role: 'babysitter',
        __meta_infini_name: 'gpu-0',
        __meta_infini_type: 'vllm',
        __meta_infini_parent: '',
        __meta_infini_healthy: 'true',
        __meta_infini_models: '',
        __scheme__: 'http',
      },
    });
    assert.deepEqual(targetGroup(engine(), false), {
      targets: ['10.0.0.5:8100'],
      labels: {
        __meta_infini_role: 'engine',
        __meta_infini_name: 'gpu-0-server',
        __meta_infini_type: 'openai-api',
        __meta_infini_parent: 'gpu-0',
        __meta_infini_healthy: 'false',
        __meta_infini_models: ',llama-3,qwen,',
        __scheme__: 'http',
      },
    });
    const plain = { name: 'auth', host: 'h', port: 9, url: 'https://auth.example', metadata: {} };
    assert.deepEqual(targetGroup(plain, true).labels, {
      __meta_infini_role: 'other',
      __meta_infini_name: 'auth',
      __meta_infini_type: '',
      __meta_infini_parent: '',
      __meta_infini_healthy: 'true',
      __meta_infini_models: '',
      __scheme__: 'https',
    });
    // A standalone mock or a hand-registered engine: no babysitter, still an engine.
    assert.equal(targetRole({ type: 'openai-api', models: ['m'] }), 'engine');
    assert.equal(targetRole({ type: 'openai-api', babysitter: 'enhanced' }), 'babysitter', 'a babysitter of an openai-api backend type');
    assert.equal(targetRole({ babysitter: 'x', parent_service: 'p' }), 'other');
  });

  it('scrapes the address the url advertises (default ports, IPv6 in brackets), else host and port', () => {
    const at = (url: string, host = 'h', port = 1) => targetAddress({ url, host, port });
    assert.deepEqual(at('http://10.0.0.5:8100/v1'), { target: '10.0.0.5:8100', scheme: 'http' });
    assert.deepEqual(at('https://gpu.example/base'), { target: 'gpu.example:443', scheme: 'https' });
    assert.deepEqual(at('HTTP://GPU.example'), { target: 'gpu.example:80', scheme: 'http' });
    assert.deepEqual(at('http://[fd00::5]:8100'), { target: '[fd00::5]:8100', scheme: 'http' });
    assert.deepEqual(at('not a url', 'fd00::5', 8100), { target: '[fd00::5]:8100', scheme: undefined });
    assert.deepEqual(at('not a url', '10.0.0.5', 8100), { target: '10.0.0.5:8100', scheme: undefined });
  });

  it('keeps only string models and ignores ill-typed metadata', () => {
    const odd = { ...engine(), metadata: { type: 7, parent_service: ['x'], models: ['a', 3, null, 'b'] } };
    const { labels } = targetGroup(odd, true);
    assert.equal(labels.__meta_infini_type, '');
    assert.equal(labels.__meta_infini_parent, '');
    assert.equal(labels.__meta_infini_models, ',a,b,');
    assert.equal(targetGroup({ ...engine(), metadata: { models: 'llama-3' } }, true).labels.__meta_infini_models, '');
  });
});

describe('prometheus targets: the cached body', () => {
  /** A liveness clock on hand-moved time, read every tick as its ticker would (no pause credited). */
  const fakeClock = () => {
    const t = { mono: 1_000 };
    const clock = new LivenessClock({ monotonic: () => t.mono });
    const run = (ms: number, each: () => void) => {
      for (let done = 0; done < ms; done += PAUSE_TICK_MS) {
        t.mono += PAUSE_TICK_MS;
        clock.now();
        each();
      }
    };
    return { clock, run };
  };

  it('is every record\'s group with its health now, rebuilt when the feed moves and reused while only heartbeats arrive', async () => {
    const { clock, run } = fakeClock();
    const store = new EmbeddedStore({ heartbeatTimeoutMs: 1_000, maxHoldMs: 2_000, clock });
    await store.open();
    const targets = new PrometheusTargets(store);
    const text = async () => Buffer.concat((await targets.body()).chunks).toString();
    const expected = () => JSON.stringify([...store.all().values()].map((r) => targetGroup(r, store.isHealthy(r))));
    try {
      assert.equal(await text(), '[]');
      const names = ['a', 'b', 'c', 'd', 'e'];
      for (const n of names) {
        await store.put(sitter(n, 8100 + 2 * names.indexOf(n)));
        await store.put(engine(n, 8100 + 2 * names.indexOf(n)));
      }
      assert.equal(await text(), expected());
      assert.equal(JSON.parse(await text()).length, 10);

      const cached = targets.body();
      for (const n of names) await store.touch(n);
      assert.equal(targets.body(), cached, 'a heartbeat moves no index: the same body');

      // e-server falls silent: its health flip is a feed event, so the body changes with it.
      const alive = [...names, ...names.filter((n) => n !== 'e').map((n) => `${n}-server`)];
      run(1_500, () => alive.forEach((n) => void store.touch(n)));
      assert.notEqual(targets.body(), cached);
      const groups = JSON.parse(await text());
      assert.equal(groups.find((g: any) => g.labels.__meta_infini_name === 'e-server').labels.__meta_infini_healthy, 'false');
      assert.equal(groups.filter((g: any) => g.labels.__meta_infini_healthy === 'true').length, 9);
      assert.equal(await text(), expected());

      await store.delete('a-server');
      await store.update('b', { status: 'draining' }, { heartbeat: true });
      assert.equal(await text(), expected());
      assert.ok(!(await text()).includes('"a-server"'));

      // More records than one serialisation step (2000).
      for (let i = 0; i < 4500; i += 500) await Promise.all(Array.from({ length: 500 }, (_, k) => store.put(engine(`bulk-${i + k}`, 10_000 + i + k))));
      assert.equal(await text(), expected());
      assert.equal(JSON.parse(await text()).length, 4509);
    } finally {
      await store.close();
    }
  });
});

describe('GET /prometheus/targets', () => {
  const token = 'sd-token';
  const auth = { authorization: `Bearer ${token}` };
  let reg: RunningService;
  before(async () => {
    reg = await startRegistry(['--auth-token', token]);
  });
  after(() => reg.stop());

  const targets = async () => {
    // Read without the token: reads are open, as GET /services is.
    const r = await http('GET', `${reg.url}/prometheus/targets`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    return r.body as Array<{ targets: string[]; labels: Record<string, string> }>;
  };

  it('answers [] with no records', async () => {
    const r = await http('GET', `${reg.url}/prometheus/targets`);
    assert.equal(r.status, 200);
    assert.equal(r.text, '[]');
    assert.equal(r.headers.get('content-type'), 'application/json');
  });

  it('lists a babysitter and its engine with their labels, and drops them once deregistered', async () => {
    for (const body of [sitter('obs', 8200), engine('obs', 8200)]) {
      assert.equal((await http('POST', `${reg.url}/services`, { body: { ...body, host: '127.0.0.1', hostname: '127.0.0.1', url: body.url.replace('10.0.0.5', '127.0.0.1') }, headers: auth })).status, 201);
    }
    const groups = await targets();
    const byName = new Map(groups.map((g) => [g.labels.__meta_infini_name, g]));
    assert.equal(groups.length, 2);
    assert.deepEqual(byName.get('obs'), {
      targets: ['127.0.0.1:8201'],
      labels: { __meta_infini_role: 'babysitter', __meta_infini_name: 'obs', __meta_infini_type: 'vllm', __meta_infini_parent: '', __meta_infini_healthy: 'true', __meta_infini_models: '', __scheme__: 'http' },
    });
    assert.deepEqual(byName.get('obs-server'), {
      targets: ['127.0.0.1:8200'],
      labels: { __meta_infini_role: 'engine', __meta_infini_name: 'obs-server', __meta_infini_type: 'openai-api', __meta_infini_parent: 'obs', __meta_infini_healthy: 'true', __meta_infini_models: ',llama-3,qwen,', __scheme__: 'http' },
    });

    // A status other than running is unhealthy, as in GET /services.
    assert.equal((await http('POST', `${reg.url}/services/obs-server/heartbeat`, { body: { status: 'draining' }, headers: auth })).status, 200);
    assert.equal((await targets()).find((g) => g.labels.__meta_infini_name === 'obs-server')?.labels.__meta_infini_healthy, 'false');

    assert.equal((await http('DELETE', `${reg.url}/services/obs-server`, { headers: auth })).status, 200);
    assert.deepEqual((await targets()).map((g) => g.labels.__meta_infini_name), ['obs']);
    assert.equal((await http('DELETE', `${reg.url}/services/obs`, { headers: auth })).status, 200);
    assert.deepEqual(await targets(), []);
  });

  it('refuses other methods with 405, naming GET', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await http(method, `${reg.url}/prometheus/targets`, { body: {}, headers: auth });
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.get('allow'), 'GET');
      assert.match(r.body.error, /not allowed/);
    }
    assert.equal((await http('GET', `${reg.url}/prometheus/targets/`)).status, 200, 'a trailing slash is the same path');
    assert.equal((await http('GET', `${reg.url}/prometheus`)).status, 404);
  });
});
