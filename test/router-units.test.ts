import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { Backend, type BackendSpec } from '../src/router/backend.js';
import { parseValue, parseSize } from '../src/common/settings.js';
import { routerSpec } from '../src/router/spec.js';
import { downstreamResponseHeaders } from '../src/router/headers.js';
import { withNames } from './helpers/header-names.js';
import { aggregateModels } from '../src/router/model-catalog.js';
import { BackendSet } from '../src/router/backend-set.js';
import { createPolicy, type Policy } from '../src/router/policies/index.js';
import { LeastLoad } from '../src/router/policies/least-load.js';
import { PowerOfTwo } from '../src/router/policies/power-of-two.js';
import { rendezvous } from '../src/router/policies/session-affinity.js';
import { WeightedRoundRobin } from '../src/router/policies/weighted-round-robin.js';
import { extractInto, sessionKey, type RequestInfo } from '../src/router/request-info.js';
import { loadStaticServices } from '../src/router/static-services.js';
import { SlotList } from '../src/common/slot-list.js';

const POOL = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000 };
const backends: Backend[] = [];
function backend(name: string, opts: { weight?: number; models?: string[]; cacheType?: string; port?: number } = {}): Backend {
  const spec: BackendSpec = {
    name,
    host: '127.0.0.1',
    port: opts.port ?? 9000 + backends.length,
    url: `http://127.0.0.1:${opts.port ?? 9000 + backends.length}`,
    weight: opts.weight ?? 1,
    metadata: { type: 'openai-api', models: opts.models ?? ['m'], ...(opts.cacheType ? { cache_type: opts.cacheType } : {}) },
    isStatic: true,
  };
  const b = new Backend(spec, POOL);
  backends.push(b);
  return b;
}
const info = (over: Partial<RequestInfo> = {}): RequestInfo => ({ model: 'm', stream: false, promptCacheKey: undefined, size: 0, sessionKey: undefined, body: undefined, ...over });
const count = (picks: Backend[]) => picks.reduce<Record<string, number>>((acc, b) => ((acc[b.name] = (acc[b.name] ?? 0) + 1), acc), {});

/** A set of backends routed by `policy` (a fresh Backend per spec, joined in the given order). */
function fleet(policy: Policy, specs: Array<{ name: string; weight?: number; models?: string[]; cacheType?: string }>) {
  const set = new BackendSet(POOL);
  set.setPolicy(policy);
  const list = specs.map((o, i) => set.upsert({ name: o.name, host: '127.0.0.1', port: 9500 + i, url: `http://127.0.0.1:${9500 + i}`, weight: o.weight ?? 1, metadata: { type: 'openai-api', models: o.models ?? ['m'], ...(o.cacheType ? { cache_type: o.cacheType } : {}) }, isStatic: true }));
  const pick = (over: Partial<RequestInfo> = {}) => set.pick(info(over), Date.now())!;
  return { set, list, pick };
}

describe('weighted round robin', () => {
  it('rotates evenly per model, unaffected by other models', () => {
    const { pick } = fleet(new WeightedRoundRobin(), [
      { name: 'a', models: ['x', 'y'] },
      { name: 'b', models: ['x', 'y'] },
      { name: 'c', models: ['y'] },
    ]);
    const picks: Backend[] = [];
    for (let i = 0; i < 30; i++) {
      picks.push(pick({ model: 'x' }));
      pick({ model: 'y' }); // interleaved traffic of another model
    }
    assert.deepEqual(count(picks), { a: 15, b: 15 });
    assert.notEqual(picks[0], picks[1]);
  });

  it('honours weights smoothly and skips weight 0 unless all are 0', () => {
    const { list, pick } = fleet(new WeightedRoundRobin(), [
      { name: 'wa', weight: 1 },
      { name: 'wb', weight: 3 },
      { name: 'wz', weight: 0 },
    ]);
    const b = list[1]!;
    const picks = Array.from({ length: 40 }, () => pick());
    assert.deepEqual(count(picks), { wa: 10, wb: 30 });
    // smooth: never 3 a's in a row, b's spread out
    assert.ok(!picks.slice(0, 4).every((x) => x === b));
    const zero = fleet(new WeightedRoundRobin(), [
      { name: 'z1', weight: 0 },
      { name: 'z2', weight: 0 },
    ]);
    const zpicks = Array.from({ length: 4 }, () => zero.pick());
    assert.deepEqual(count(zpicks), { z1: 2, z2: 2 });
  });
});

describe('session affinity (rendezvous hashing)', () => {
  const fleet5 = Array.from({ length: 5 }, (_, i) => backend(`node-${i}`));
  const keys = Array.from({ length: 2000 }, (_, i) => `m:prompt_cache:user-${i}`);

  it('is stable and spreads keys', () => {
    const first = keys.map((k) => rendezvous(fleet5, k)!);
    assert.deepEqual(keys.map((k) => rendezvous(fleet5, k)!), first);
    const spread = count(first);
    for (const n of Object.values(spread)) assert.ok(n > 250 && n < 550, `balanced: ${JSON.stringify(spread)}`);
  });

  it('moves only the keys of a backend that left, and only keys to one that joined', () => {
    const before = keys.map((k) => rendezvous(fleet5, k)!);
    const without = fleet5.filter((b) => b.name !== 'node-2');
    const after = keys.map((k) => rendezvous(without, k)!);
    keys.forEach((_, i) => {
      if (before[i]!.name !== 'node-2') assert.equal(after[i], before[i]);
    });
    const bigger = [...fleet5, backend('node-5')];
    const grown = keys.map((k) => rendezvous(bigger, k)!);
    let moved = 0;
    keys.forEach((_, i) => {
      if (grown[i] !== before[i]) {
        moved++;
        assert.equal(grown[i]!.name, 'node-5');
      }
    });
    assert.ok(moved > 200 && moved < 500, `about a sixth moved: ${moved}`);
  });

  it('respects weights', () => {
    const light = backend('light', { weight: 1 });
    const heavy = backend('heavy', { weight: 3 });
    const c = count(keys.map((k) => rendezvous([light, heavy], k)!));
    assert.ok(c.heavy! > 2.4 * c.light! && c.heavy! < 3.6 * c.light!, JSON.stringify(c));
  });

  it('is applied by the composed policy for requests with a session key only', () => {
    const { pick } = fleet(createPolicy('round-robin', { sizeThresholdBytes: 100 }), [{ name: 's1' }, { name: 's2' }]);
    const sticky = Array.from({ length: 6 }, () => pick({ sessionKey: 'm:session:abc' }));
    assert.equal(new Set(sticky).size, 1);
    const rotating = Array.from({ length: 6 }, () => pick());
    assert.equal(new Set(rotating).size, 2);
  });
});

describe('size classes', () => {
  const specs = [{ name: 'paged-1', cacheType: 'paged' }, { name: 'untyped' }, { name: 'static-1', cacheType: 'static' }, { name: 'static-2', cacheType: 'static' }];
  const policy = () => createPolicy('round-robin', { sizeThresholdBytes: 100 });

  it('sends large requests to static backends and small ones to paged (untyped counts as paged)', () => {
    const { pick } = fleet(policy(), specs);
    const large = Array.from({ length: 8 }, () => pick({ size: 101 }));
    assert.ok(large.every((b) => b.cacheType === 'static'));
    assert.equal(new Set(large).size, 2);
    const small = Array.from({ length: 8 }, () => pick({ size: 100 }));
    assert.deepEqual(new Set(small.map((b) => b.name)), new Set(['paged-1', 'untyped']));
  });

  it('falls back to all candidates when the class is empty, and keeps affinity inside the class', () => {
    assert.ok(fleet(policy(), specs.slice(0, 2)).pick({ size: 5000 }));
    const { pick } = fleet(policy(), [specs[0]!, ...specs.slice(2)]);
    const key = { size: 5000, sessionKey: 'm:prompt_cache:k' };
    const chosen = pick(key);
    assert.equal(chosen.cacheType, 'static');
    for (let i = 0; i < 5; i++) assert.equal(pick(key), chosen);
  });
});

describe('load-aware policies', () => {
  it('least-load picks the fewest in flight, rotating ties', () => {
    const { list, pick } = fleet(new LeastLoad(), [{ name: 'l1' }, { name: 'l2' }, { name: 'l3' }]);
    const [a, b, c] = list as [Backend, Backend, Backend];
    a.inFlight = 3;
    b.inFlight = 1;
    c.inFlight = 2;
    assert.equal(pick(), b);
    a.inFlight = b.inFlight = c.inFlight = 0;
    assert.equal(new Set(Array.from({ length: 3 }, () => pick())).size, 3);
  });

  it('power-of-two picks the less loaded of two distinct samples', () => {
    const { list, pick } = fleet(new PowerOfTwo(() => 0), [{ name: 'p1' }, { name: 'p2' }]);
    list[0]!.inFlight = 5;
    assert.equal(pick(), list[1]);
  });
});

describe('routing field extraction', () => {
  const fresh = () => ({ model: undefined, stream: false, streamUsage: undefined as boolean | undefined, promptCacheKey: undefined, size: 0 });
  const ex = (v: unknown) => extractInto(fresh(), Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));

  it('reads model, stream, prompt_cache_key and message text size', () => {
    const r = ex({ model: 'm1', stream: true, prompt_cache_key: 'k', messages: [{ role: 'user', content: 'héllo' }, { role: 'user', content: [{ type: 'text', text: 'abc' }, { type: 'image_url', image_url: {} }] }] });
    assert.deepEqual(r, { model: 'm1', stream: true, streamUsage: false, promptCacheKey: 'k', size: 6 + 3 });
  });

  it('notes whether a stream asked for usage (stream_options.include_usage)', () => {
    assert.equal(ex({ model: 'm1', stream: true, stream_options: { include_usage: true } }).streamUsage, true);
    assert.equal(ex({ model: 'm1', stream: true, stream_options: { include_usage: 'yes' } }).streamUsage, false);
    assert.equal(ex({ model: 'm1', stream: true, stream_options: null }).streamUsage, false);
  });

  it('is tolerant: one odd field never hides the others', () => {
    assert.equal(ex({ model: 'm1', prompt: [1, 2, 3] }).model, 'm1');
    assert.equal(ex({ model: 'm1', prompt: [1, 2, 3] }).size, 12);
    assert.equal(ex({ model: 7, stream: true }).stream, true);
    assert.equal(ex({ model: 'm1', messages: 'odd', stream: 'yes' }).model, 'm1');
    assert.equal(ex({ model: 'm1', messages: [null, 3, { content: 5 }] }).size, 0);
    assert.equal(ex({ model: 'm1', prompt: ['ab', 'c'] }).size, 3);
    assert.equal(ex('not json').model, undefined);
    assert.equal(ex('[1,2]').model, undefined);
    assert.equal(extractInto(fresh(), undefined).size, 0);
  });

  it('builds session keys from prompt_cache_key, X-Session-Id, then X-Forwarded-For + UA', () => {
    assert.equal(sessionKey('m', 'k', {}), 'm:prompt_cache:k');
    assert.equal(sessionKey(undefined, undefined, { 'x-session-id': 's1' }), 'default:session:s1');
    assert.equal(sessionKey('m', undefined, { 'x-forwarded-for': ' 1.2.3.4 , 5.6.7.8', 'user-agent': 'ua' }), 'm:ip:1.2.3.4|ua');
    assert.equal(sessionKey('m', undefined, {}), undefined);
  });
});

describe('router helpers', () => {
  it('strips hop-by-hop response headers and keeps the rest', () => {
    const raw = ['Content-Type', 'text/event-stream', 'Connection', 'keep-alive, X-Hop', 'Transfer-Encoding', 'chunked', 'X-Hop', '1', 'X-Keep', '2', 'Content-Length', '5'];
    assert.deepEqual(downstreamResponseHeaders(...withNames(raw), 'rid', false), ['Content-Type', 'text/event-stream', 'X-Keep', '2', 'x-request-id', 'rid']);
    assert.deepEqual(downstreamResponseHeaders(...withNames(raw.slice(-2)), undefined, true), ['Content-Length', '5']);
  });

  it('parses sizes', () => {
    assert.equal(parseSize('32MiB'), 32 * 1024 * 1024);
    assert.equal(parseSize('512k'), 512 * 1024);
    assert.equal(parseSize('100'), 100);
    const maxBody = routerSpec().settings.find((s) => s.key === 'max-body')!;
    assert.throws(() => parseValue(maxBody, 'lots', '--max-body'), /--max-body: expected a size/);
  });

  it('aggregates models_list objects, de-duplicated and sorted, over routable backends', () => {
    const a = backend('agg-a', { models: ['z', 'y'] });
    a.metadata = { ...a.metadata, models_list: [{ id: 'z', object: 'model', owned_by: 'a' }, { id: 'y' }, 'junk'] };
    const b = backend('agg-b', { models: ['x', 'z'] });
    const down = backend('agg-down', { models: ['hidden'] });
    down.checkOk = false;
    const list = aggregateModels([a, b, down], Date.now(), 1);
    assert.deepEqual(list.map((m) => m.id), ['x', 'y', 'z']);
    assert.equal(list[2]!.owned_by, 'a');
  });

  it('loads the three static services shapes and names the key of a bad entry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'static-'));
    const entry = { name: 's', host: 'h', port: 80, max_fails: 3 };
    const shapes = [{ static_services: { services: [entry] } }, { services: [entry] }, [entry]];
    for (const [i, shape] of shapes.entries()) {
      const path = join(dir, `s${i}.json`);
      await writeFile(path, JSON.stringify(shape));
      const [spec] = loadStaticServices(path);
      assert.deepEqual(spec, { name: 's', host: 'h', port: 80, url: 'http://h:80', weight: 1, metadata: {}, isStatic: true });
    }
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ services: [entry, { name: 'x', host: 'h', port: 'eighty' }] }));
    assert.throws(() => loadStaticServices(bad), /bad\.json: key 'services\[1\]\.port'/);
  });

  it('ejects after consecutive failures with doubling back-off, and a success resets the count', () => {
    const b = backend('ej');
    const now = 1_000_000;
    assert.equal(b.recordFailure(3, now), false);
    b.recordSuccess();
    b.recordFailure(3, now);
    b.recordFailure(3, now);
    assert.equal(b.recordFailure(3, now), true);
    assert.equal(b.ejectedUntil, now + 30_000);
    assert.equal(b.routable(now + 1), false);
    assert.equal(b.routable(now + 30_000), true);
    for (let i = 0; i < 3; i++) b.recordFailure(3, now + 30_000);
    assert.equal(b.ejectedUntil, now + 30_000 + 60_000);
    b.endEjection();
    assert.equal(b.routable(now + 30_001), true);
  });
});

process.on('exit', () => {
  for (const b of backends) void b.pool.destroy();
});

describe('SlotList', () => {
  it('adds and removes in O(1), and may be changed while walked backwards', () => {
    const list = new SlotList<{ slot: number; id: number }>();
    const items = Array.from({ length: 6 }, (_, id) => ({ slot: -1, id }));
    for (const it of items) list.add(it);
    assert.equal(list.length, 6);
    assert.equal(list.remove(items[1]!), true);
    assert.equal(list.remove(items[1]!), false, 'a second remove is a no-op');
    assert.equal(items[1]!.slot, -1);
    assert.deepEqual(list.items.map((x) => x.id).sort(), [0, 2, 3, 4, 5]);
    for (const x of list.items) assert.equal(list.items[x.slot], x, 'every slot points at its item');
    // remove the even ones and add a new one while walking: each old item seen once, the new one not
    const seen: number[] = [];
    list.forEachBackwards((x) => {
      seen.push(x.id);
      if (x.id % 2 === 0) list.remove(x);
      if (x.id === 3) list.add({ slot: -1, id: 99 });
    });
    assert.deepEqual(seen.sort((a, b) => a - b), [0, 2, 3, 4, 5]);
    assert.deepEqual(list.items.map((x) => x.id).sort((a, b) => a - b), [3, 5, 99]);
    for (const x of list.items) assert.equal(list.items[x.slot], x);
  });
});
