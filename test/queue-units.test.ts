/**
 * The wait queue and per-backend limits as pure logic: the queue's order (priority, then arrival),
 * bounds and expiry with a clock passed in, and the backend set's index with full backends (a full
 * backend is no candidate, and the policies choose among those with room).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from './helpers/test.js';
import { Admission } from '../src/router/admission.js';
import { BackendLimits, metadataLimit, perProcess } from '../src/router/backend-limits.js';
import { BackendSet } from '../src/router/backend-set.js';
import type { Backend } from '../src/router/backend.js';
import { createPolicy } from '../src/router/policies/index.js';
import type { RequestInfo } from '../src/router/request-info.js';
import { WaitQueue, type Waiter } from '../src/router/wait-queue.js';

const LIMITS = { maxPerKey: 100, maxBytes: 1e9, timeoutMs: 1000 };

describe('wait queue', () => {
  it('serves higher priority first, first come first served within a priority', () => {
    const q = new WaitQueue<string>(LIMITS);
    q.offer('a0', 'm', 0, 0, 0);
    q.offer('b5', 'm', 5, 0, 1);
    q.offer('c0', 'm', undefined, 0, 2);
    q.offer('d5', 'm', 5, 0, 3);
    q.offer('e-1', 'm', -1, 0, 4);
    q.offer('f9', 'm', 9, 0, 5);
    q.offer('g', 'm', NaN, 0, 6); // not a number: 0
    const order: string[] = [];
    let w: Waiter<string> | undefined;
    while ((w = q.peek('m')) !== undefined) {
      q.remove(w);
      order.push(w.value);
    }
    assert.deepEqual(order, ['f9', 'b5', 'd5', 'a0', 'c0', 'g', 'e-1']);
    assert.equal(q.length, 0);
  });

  it('keeps one queue per key, bounded per key and in bytes for all', () => {
    const q = new WaitQueue<number>({ maxPerKey: 2, maxBytes: 100, timeoutMs: 1000 });
    assert.ok(typeof q.offer(1, 'x', 0, 10, 0) !== 'string');
    assert.ok(typeof q.offer(2, 'x', 0, 10, 0) !== 'string');
    assert.equal(q.offer(3, 'x', 0, 10, 0), 'full');
    assert.ok(typeof q.offer(4, undefined, 0, 10, 0) !== 'string', 'requests without a model have their own queue');
    assert.equal(q.offer(5, 'y', 0, 71, 0), 'bytes');
    assert.ok(typeof q.offer(6, 'y', 0, 70, 0) !== 'string');
    assert.deepEqual([q.lengthOf('x'), q.lengthOf(undefined), q.lengthOf('y'), q.length, q.bytes], [2, 1, 1, 4, 100]);
    // one request alone may exceed the bytes (as the body budget lets one body)
    const lone = new WaitQueue<number>({ maxPerKey: 2, maxBytes: 100, timeoutMs: 1000 });
    assert.ok(typeof lone.offer(1, 'x', 0, 500, 0) !== 'string');
    const none = new WaitQueue<number>({ maxPerKey: 0, maxBytes: 100, timeoutMs: 1000 });
    assert.equal(none.offer(1, 'x', 0, 0, 0), 'full', 'size 0: nothing waits');
  });

  it('expires waiters oldest first, whatever their priority, when their time is up', () => {
    const q = new WaitQueue<string>({ ...LIMITS, timeoutMs: 100 });
    q.offer('low', 'm', 0, 1, 0);
    q.offer('high', 'm', 9, 1, 10);
    q.offer('other', 'n', 0, 1, 20);
    assert.equal(q.nextDeadline(), 100);
    const out: string[] = [];
    q.expire(99, (w) => out.push(w.value));
    assert.equal(out.length, 0);
    q.expire(110, (w) => out.push(w.value));
    assert.deepEqual(out, ['low', 'high']);
    assert.equal(q.nextDeadline(), 120);
    assert.equal(q.lengthOf('m'), 0);
    q.expire(1e9, (w) => out.push(w.value));
    assert.deepEqual(out, ['low', 'high', 'other']);
    assert.equal(q.nextDeadline(), undefined);
    assert.deepEqual([q.length, q.bytes, [...q.keys()].length], [0, 0, 0]);
  });

  it('a held waiter is looked past but keeps its place, its count and its deadline', () => {
    const q = new WaitQueue<string>(LIMITS);
    const a = q.offer('a', 'm', 0, 0, 0) as Waiter<string>;
    q.offer('b', 'm', 0, 0, 1);
    q.hold(a);
    assert.equal(q.peek('m')!.value, 'b');
    assert.equal(q.lengthOf('m'), 2);
    q.unhold(a);
    assert.equal(q.peek('m')!.value, 'a');
    // removed while held: gone for good, unhold does nothing
    q.hold(a);
    q.remove(a);
    q.unhold(a);
    assert.equal(q.lengthOf('m'), 1);
    assert.equal(q.peek('m')!.value, 'b');
    q.remove(a); // twice: nothing
    assert.equal(q.length, 1);
  });

  it('property: any mix of offers, removals and expiries keeps counts, bytes and order consistent', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('offer' as const), key: fc.integer({ min: 0, max: 2 }), priority: fc.integer({ min: -2, max: 2 }), bytes: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ kind: fc.constant('remove' as const), index: fc.nat() }),
      fc.record({ kind: fc.constant('expire' as const), dt: fc.integer({ min: 0, max: 60 }) }),
      fc.record({ kind: fc.constant('serve' as const), key: fc.integer({ min: 0, max: 2 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const q = new WaitQueue<number>({ maxPerKey: 5, maxBytes: 100, timeoutMs: 50 });
        // the model: live waiters with their arrival time
        let live: Array<{ w: Waiter<number>; key: string }> = [];
        let now = 0;
        let n = 0;
        for (const o of ops) {
          if (o.kind === 'offer') {
            const key = `k${o.key}`;
            const r = q.offer(n++, key, o.priority, o.bytes, now);
            const count = live.filter((l) => l.key === key).length;
            const bytes = live.reduce((s, l) => s + l.w.bytes, 0);
            if (count >= 5) assert.equal(r, 'full');
            else if (live.length > 0 && bytes + o.bytes > 100) assert.equal(r, 'bytes');
            else live.push({ w: r as Waiter<number>, key });
          } else if (o.kind === 'remove' && live.length > 0) {
            const [gone] = live.splice(o.index % live.length, 1);
            q.remove(gone!.w);
          } else if (o.kind === 'expire') {
            now += o.dt;
            const expired: Waiter<number>[] = [];
            q.expire(now, (w) => expired.push(w));
            const due = live.filter((l) => l.w.enqueuedAt + 50 <= now).map((l) => l.w);
            assert.deepEqual(expired, due, 'the expired ones, oldest first');
            live = live.filter((l) => l.w.enqueuedAt + 50 > now);
          } else if (o.kind === 'serve') {
            const key = `k${o.key}`;
            const mine = live.filter((l) => l.key === key).map((l) => l.w);
            mine.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
            assert.equal(q.peek(key), mine[0]);
            if (mine[0]) {
              q.remove(mine[0]);
              live = live.filter((l) => l.w !== mine[0]);
            }
          }
          assert.equal(q.length, live.length);
          assert.equal(q.bytes, live.reduce((s, l) => s + l.w.bytes, 0));
          for (const k of ['k0', 'k1', 'k2']) assert.equal(q.lengthOf(k), live.filter((l) => l.key === k).length);
          const oldest = live.length > 0 ? Math.min(...live.map((l) => l.w.enqueuedAt)) + 50 : undefined;
          assert.equal(q.nextDeadline(), oldest);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('backend limits', () => {
  it('reads metadata.max_concurrency as a positive integer, or digits; anything else is none', () => {
    assert.equal(metadataLimit({ max_concurrency: 8 }), 8);
    assert.equal(metadataLimit({ max_concurrency: '16' }), 16);
    for (const bad of [0, -1, 1.5, '1e3', ' 8', 'eight', null, true, [], {}, 1e12, NaN]) assert.equal(metadataLimit({ max_concurrency: bad }), undefined, JSON.stringify(bad));
    assert.equal(metadataLimit({}), undefined);
  });

  it('config entry first (exact, then globs in order), then metadata, then the default; split across workers', () => {
    const limits = new BackendLimits({ defaultLimit: 10, table: { 'gpu-1': 3, 'gpu-*': 5, 'gpu-9*': 7, 'cpu-*': 0 }, workers: 1 });
    assert.equal(limits.of({ name: 'gpu-1', metadata: { max_concurrency: 99 } }), 3);
    assert.equal(limits.of({ name: 'gpu-9', metadata: {} }), 5, 'the first glob that matches');
    assert.equal(limits.of({ name: 'cpu-2', metadata: { max_concurrency: 4 } }), 0, 'the config can lift a limit');
    assert.equal(limits.of({ name: 'other', metadata: { max_concurrency: 4 } }), 4);
    assert.equal(limits.of({ name: 'other', metadata: {} }), 10);
    assert.equal(new BackendLimits({ defaultLimit: 0, workers: 1 }).of({ name: 'x', metadata: {} }), 0);
    assert.equal(new BackendLimits({ defaultLimit: 10, workers: 4 }).of({ name: 'x', metadata: {} }), 3);
    assert.deepEqual([perProcess(1, 4), perProcess(8, 4), perProcess(9, 4), perProcess(0, 4), perProcess(5, 1)], [1, 2, 3, 0, 5]);
    assert.throws(() => new BackendLimits({ defaultLimit: 0, table: { x: -1 }, workers: 1 }), /max_concurrency."x".*integer/);
    assert.throws(() => new BackendLimits({ defaultLimit: 0, table: { x: '4' }, workers: 1 }), /max_concurrency/);
  });
});

const POOL = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000 };
const info = (over: Partial<RequestInfo> = {}): RequestInfo => ({ model: 'm', stream: false, promptCacheKey: undefined, size: 0, sessionKey: undefined, body: undefined, ...over });

function fleet(policy: string, specs: Array<{ name: string; limit?: number; models?: string[] }>) {
  const set = new BackendSet(POOL, { maxConcurrency: (s) => Number(s.metadata.max_concurrency ?? 0) });
  set.setPolicy(createPolicy(policy, { sizeThresholdBytes: 1e9 }));
  const rooms: string[] = [];
  set.onRoom((b) => rooms.push(b.name));
  const list = specs.map((o, i) =>
    set.upsert({ name: o.name, host: '127.0.0.1', port: 9600 + i, url: `http://127.0.0.1:${9600 + i}`, weight: 1, metadata: { models: o.models ?? ['m'], ...(o.limit ? { max_concurrency: o.limit } : {}) }, isStatic: true }),
  );
  return { set, list, rooms };
}

describe('backend set with limits', () => {
  for (const policy of ['round-robin', 'least-load', 'power-of-two', 'cache-aware', 'cache-load']) {
    it(`${policy}: a full backend is no candidate; with all full the model is saturated`, () => {
      const { set, list, rooms } = fleet(policy, [
        { name: 'a', limit: 1 },
        { name: 'b', limit: 2 },
      ]);
      const [a, b] = list as [Backend, Backend];
      const sent: Backend[] = [];
      for (let i = 0; i < 3; i++) {
        const chosen = set.pick(info({ prompt: `p${i}` }), Date.now());
        assert.ok(chosen, `pick ${i}`);
        chosen.inFlight++;
        sent.push(chosen);
      }
      assert.deepEqual([a.inFlight, b.inFlight], [1, 2], 'each up to its limit, never beyond');
      assert.equal(set.pick(info(), Date.now()), undefined);
      assert.ok(set.saturated('m'));
      assert.ok(!set.saturated('m', new Set([a, b])), 'a retry that tried both waits for nothing');
      assert.ok(!set.saturated('other'));
      assert.equal(set.countRoutable(Date.now()), 2, 'full backends stay routable (healthy)');
      b.inFlight--;
      assert.deepEqual(rooms, ['a', 'b', 'b'], 'joined (a, b), then b had room');
      assert.equal(set.pick(info(), Date.now()), b);
      b.inFlight++;
      // a raised limit makes room at once; a lowered one takes no request away
      set.setLimit(a, 3);
      assert.equal(set.pick(info(), Date.now()), a);
      set.setLimit(a, 1);
      assert.equal(set.pick(info(), Date.now()), undefined);
      set.setLimit(a, 0);
      assert.equal(set.pick(info(), Date.now()), a, 'unlimited again');
    });
  }

  it('a full backend that becomes unroutable and routable again is still full; room comes when it has some', () => {
    const { set, list, rooms } = fleet('least-load', [{ name: 'a', limit: 1 }]);
    const a = list[0]!;
    a.inFlight++;
    rooms.length = 0;
    a.checkOk = false;
    a.checkOk = true;
    assert.deepEqual(rooms, [], 'routable again, but still full');
    assert.equal(set.pick(info(), Date.now()), undefined);
    a.inFlight--;
    assert.deepEqual(rooms, ['a']);
    assert.equal(set.pick(info(), Date.now()), a);
    // a new limit from a registration update applies
    set.upsert({ name: 'a', host: '127.0.0.1', port: 9600, url: 'http://127.0.0.1:9600', weight: 1, metadata: { models: ['m'], max_concurrency: 5 }, isStatic: true });
    assert.equal(a.maxConcurrency, 5);
    set.remove('a');
    assert.ok(!set.saturated('m'));
  });

  it('requests without a model see the same limits', () => {
    const { set, list } = fleet('round-robin', [
      { name: 'a', limit: 1, models: ['x'] },
      { name: 'b', limit: 1, models: ['y'] },
    ]);
    list[0]!.inFlight++;
    assert.equal(set.pick(info({ model: undefined }), Date.now()), list[1]);
    list[1]!.inFlight++;
    assert.equal(set.pick(info({ model: undefined }), Date.now()), undefined);
    assert.ok(set.saturated(undefined));
  });
});

describe('admission: serving the queue when backends get room', () => {
  interface Item {
    id: string;
    info: RequestInfo;
    tried: Set<Backend> | undefined;
    waiter: Waiter<Item> | undefined;
    queuedMs: number;
  }
  const item = (id: string, over: Partial<Item> = {}): Item => ({ id, info: info(), tried: undefined, waiter: undefined, queuedMs: -1, ...over });
  const tick = () => new Promise<void>((r) => setImmediate(r));

  function setup(queueSize = 10) {
    const { set, list } = fleet('round-robin', [
      { name: 'a', limit: 1 },
      { name: 'b', limit: 1 },
    ]);
    const sent: string[] = [];
    const refused: string[] = [];
    const adm = new Admission<Item>(
      set,
      {
        dispatch: (it, b) => {
          sent.push(`${it.id}->${b.name}`);
          b.inFlight++;
        },
        refuse: (it, err, reason) => refused.push(`${it.id}:${reason}:${err.code}`),
      },
      { queueSize, maxBytes: 1e6, timeoutMs: 60_000 },
    );
    const [a, b] = list as [Backend, Backend];
    a.inFlight++;
    b.inFlight++;
    return { set, a, b, adm, sent, refused };
  }

  it('serves higher priority first; a retry only a tried backend has room for is looked past, keeping its place', async () => {
    const { a, b, adm, sent } = setup();
    const retry = item('retry', { tried: new Set() });
    assert.ok(adm.admit(retry, 0));
    retry.tried!.add(a);
    assert.ok(adm.admit(item('fresh'), 0));
    assert.ok(adm.admit(item('urgent', { info: info({ priority: 5 }) }), 0));
    assert.equal(adm.queue.length, 3);
    a.inFlight--;
    await tick();
    assert.deepEqual(sent, ['urgent->a']);
    a.inFlight--;
    await tick();
    // the retry (older) cannot go to a, which it tried: the fresh request behind it takes a
    assert.deepEqual(sent, ['urgent->a', 'fresh->a']);
    b.inFlight--;
    await tick();
    assert.deepEqual(sent, ['urgent->a', 'fresh->a', 'retry->b']);
    assert.equal(adm.queue.length, 0);
    assert.ok(retry.queuedMs >= 0 && retry.waiter === undefined);
    assert.deepEqual(Array.from(adm.stats.get('m')!.outcomes), [3, 0, 0, 0]);
    adm.close();
  });

  it('a backend of several models gives each place to the request that waited longest among them', async () => {
    const { set, list } = fleet('least-load', [{ name: 'shared', limit: 1, models: ['x', 'y'] }]);
    const shared = list[0]!;
    const sent: string[] = [];
    const adm = new Admission<Item>(set, { dispatch: (it, b) => (sent.push(it.id), b.inFlight++), refuse: () => assert.fail('nothing refused') }, { queueSize: 10, maxBytes: 1e6, timeoutMs: 60_000 });
    shared.inFlight++;
    for (const [id, model] of [['y1', 'y'], ['x1', 'x'], ['y2', 'y'], ['x2', 'x']] as const) assert.ok(adm.admit(item(id, { info: info({ model }) }), 0));
    for (let i = 0; i < 4; i++) {
      shared.inFlight--;
      await tick();
    }
    assert.deepEqual(sent, ['y1', 'x1', 'y2', 'x2'], 'in arrival order across the two models (x is listed first)');
    adm.close();
  });

  it('refuses at once when the queue is full; not saturated (nothing full) is not its business', () => {
    const { set, adm, refused } = setup(1);
    assert.ok(adm.admit(item('first'), 0));
    assert.ok(adm.admit(item('second'), 0));
    assert.deepEqual(refused, ['second:queue_full:queue_full']);
    assert.equal(adm.admit(item('other', { info: info({ model: 'unknown' }) }), 0), false);
    set.remove('a');
    set.remove('b');
    assert.equal(adm.admit(item('third'), 0), false, 'no backend at all: the usual 503/404');
    const w = adm.queue.peek('m')!;
    adm.leave(w.value);
    assert.equal(adm.queue.length, 0);
    assert.deepEqual(Array.from(adm.stats.get('m')!.outcomes), [0, 0, 1, 1]);
    adm.close();
  });
});
