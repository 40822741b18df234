import assert from 'node:assert/strict';
import { after, before, describe, it } from './helpers/test.js';
import { EmbeddedStore } from '../src/registry/embedded-store.js';
import { LivenessClock, PAUSE_TICK_MS, PAUSE_TOLERANCE_MS } from '../src/registry/liveness-clock.js';
import { isMassExpiry, massExpiryStart, SelfPreservation } from '../src/registry/self-preservation.js';
import { http, startMocks, startRegistry, waitFor, type RunningService } from './helpers/services.js';

/** A clock on a hand-moved monotonic time. */
function fakeClock() {
  const t = { mono: 1_000 };
  const clock = new LivenessClock({ monotonic: () => t.mono });
  /** Moves time in ticks, reading the clock each tick as the ticker would: running, not paused. */
  const run = (ms: number, each?: () => void) => {
    for (let done = 0; done < ms; done += PAUSE_TICK_MS) {
      t.mono += PAUSE_TICK_MS;
      clock.now();
      each?.();
    }
  };
  /** Moves time with no read at all: the process was stopped. */
  const pause = (ms: number) => (t.mono += ms);
  return { t, clock, run, pause };
}

describe('liveness clock', () => {
  it('counts running time and credits pauses, wherever the first read after them comes from', () => {
    const { clock, run, pause } = fakeClock();
    const start = clock.now();
    run(1_000);
    assert.equal(clock.now() - start, 1_000);
    pause(60_000);
    assert.ok(clock.now() - start <= 1_000 + PAUSE_TICK_MS, 'a stop does not age anything');
    run(500);
    assert.ok(clock.now() - start <= 1_500 + PAUSE_TICK_MS);
    // Jitter below the tolerance is ordinary running time.
    const before = clock.now();
    pause(PAUSE_TICK_MS + PAUSE_TOLERANCE_MS);
    assert.equal(clock.now() - before, PAUSE_TICK_MS + PAUSE_TOLERANCE_MS);
  });

  it('holds where it is told, never later than now, and resumes from there', () => {
    const { clock, run } = fakeClock();
    run(1_000);
    const at = clock.now();
    clock.hold(at - 300);
    assert.equal(clock.now(), at - 300);
    run(5_000);
    assert.equal(clock.now(), at - 300);
    assert.equal(clock.heldFor(), 5_000);
    assert.equal(clock.release(), 5_000);
    run(200);
    assert.equal(clock.now(), at - 100);
    clock.hold(clock.now() + 10_000);
    assert.equal(clock.now(), at - 100, 'a hold never moves time forward');
  });
});

describe('mass-expiry rule', () => {
  it('is more than half the records and at least three', () => {
    const table: Array<[number, number, boolean]> = [
      [1, 1, false],
      [2, 2, false],
      [2, 3, false],
      [3, 3, true],
      [3, 4, true],
      [3, 6, false],
      [4, 6, true],
      [50, 100, false],
      [51, 100, true],
    ];
    for (const [silent, total, mass] of table) assert.equal(isMassExpiry(silent, total), mass, `${silent} of ${total}`);
  });

  it('starts when the m-th oldest heartbeat passes the timeout', () => {
    assert.equal(massExpiryStart([0, 10], 1_000), undefined, 'too few records for a mass');
    assert.equal(massExpiryStart([30, 10, 20], 1_000), 1_030);
    assert.equal(massExpiryStart([0, 10, 20, 30, 40, 50], 1_000), 1_030, '4 of 6');
  });

  it('holds, releases when heartbeats resume, and gives up after the longest hold', () => {
    const { clock, run } = fakeClock();
    const guard = new SelfPreservation(clock, 1_000, 5_000);
    const t0 = clock.now();
    const heard = [t0, t0 + 100, t0 + 200, t0 + 300];
    run(1_500, () => guard.assess(heard));
    assert.equal(guard.state, 'holding');
    assert.equal(clock.now(), t0 + 1_200 - 1, 'stopped just before the third silence');
    // Two come back: two of four silent is no mass.
    heard[2] = heard[3] = clock.now();
    guard.assess(heard);
    assert.equal(guard.state, 'normal');
    // All go silent for good: held for the longest hold, then taken as real.
    run(10_000, () => guard.assess(heard));
    assert.equal(guard.state, 'spent');
    assert.ok(heard.every((h) => clock.now() - h >= 1_000), 'after the hold, all are silent');
    // Not held again until silence is below the threshold.
    heard.splice(0, 3);
    guard.assess(heard);
    assert.equal(guard.state, 'normal');
  });
});

describe('embedded store expiry (fake time)', () => {
  const reg = (name: string) => ({ name, host: '127.0.0.1', port: 1, hostname: '127.0.0.1', url: 'http://127.0.0.1:1', status: 'running', metadata: {} });

  it('a pause of the registry flips nothing and evicts nothing', async () => {
    const { clock, run, pause } = fakeClock();
    const store = new EmbeddedStore({ heartbeatTimeoutMs: 1_000, maxHoldMs: 2_000, clock });
    await store.open();
    for (const n of ['a', 'b', 'c', 'd', 'e']) await store.put(reg(n));
    const events: string[] = [];
    store.watch(undefined, (e) => events.push(`${e.type}:${e.service.name}`));
    const beat = () => ['a', 'b', 'c', 'd', 'e'].forEach((n) => void store.touch(n));
    run(3_000, () => {
      beat();
      store.evaluateHealth();
    });
    pause(60_000);
    store.evaluateHealth();
    assert.deepEqual(await store.expireStale(2_000), []);
    beat();
    run(3_000, () => {
      beat();
      store.evaluateHealth();
    });
    assert.deepEqual(events, []);
    await store.close();
  });

  it('expires a lone silent record on time, and a mass loss after one hold', async () => {
    const { t, clock, run } = fakeClock();
    const store = new EmbeddedStore({ heartbeatTimeoutMs: 1_000, maxHoldMs: 2_000, clock });
    await store.open();
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const n of names) await store.put(reg(n));
    const events: Array<[string, number]> = [];
    // Event times in process time (t.mono): the liveness clock stands still during a hold.
    store.watch(undefined, (e) => events.push([`${e.type}:${e.service.name}${e.type === 'health' ? `=${e.service.is_healthy}` : ''}`, t.mono]));
    let alive = ['a', 'b', 'c', 'd', 'e'];
    const tick = () => {
      alive.forEach((n) => void store.touch(n));
      store.evaluateHealth();
    };
    run(2_500, tick);
    await store.expireStale(2_000);
    assert.deepEqual(events.map((e) => e[0]), ['health:f=false', 'delete:f'], 'one silent record expires normally');
    events.length = 0;
    // a and b die, then c, d and e: the third silence of five is a mass.
    alive = ['c', 'd', 'e'];
    run(300, tick);
    alive = [];
    run(1_500, tick);
    assert.deepEqual(events.map((e) => e[0]).sort(), ['health:a=false', 'health:b=false']);
    assert.deepEqual(await store.expireStale(2_000), []);
    run(2_000, tick);
    assert.deepEqual(await store.expireStale(2_000), [], 'nothing evicted during the hold');
    run(3_000, tick);
    assert.deepEqual(events.map((e) => e[0]).sort(), ['health:a=false', 'health:b=false', 'health:c=false', 'health:d=false', 'health:e=false']);
    const heldFlip = events.find((e) => e[0] === 'health:c=false')![1];
    const earlyFlip = events.find((e) => e[0] === 'health:b=false')![1];
    assert.ok(heldFlip - earlyFlip >= 2_000, 'the held flips came one hold later');
    const evicted = (await store.expireStale(2_000)).map((e) => e.rec.name).sort();
    assert.deepEqual(evicted, ['a', 'b', 'c', 'd', 'e'], 'a real loss is evicted after the hold');
    await store.close();
  });
});

/** Records a registry's change feed with arrival order. */
class FeedRecorder {
  readonly events: any[] = [];
  private readonly controller = new AbortController();

  static async open(url: string): Promise<FeedRecorder> {
    const rec = new FeedRecorder();
    const res = await fetch(url, { signal: rec.controller.signal });
    assert.equal(res.status, 200);
    void rec.pump(res.body!);
    return rec;
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let sep: number;
        while ((sep = buffer.indexOf('\n\n')) !== -1) {
          const data = buffer.slice(0, sep).split('\n').find((l) => l.startsWith('data: '));
          buffer = buffer.slice(sep + 2);
          if (data) this.events.push(JSON.parse(data.slice(6)));
        }
      }
    } catch {
      // closed
    }
  }

  of(type: string, name?: string): any[] {
    return this.events.filter((e) => e.type === type && (name === undefined || e.service?.name === name));
  }

  close(): void {
    this.controller.abort();
  }
}

/** The injected fault itself is a length of time; this is not a wait for a condition. */
const pauseFor = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('registry pause and mass loss, real processes', { timeout: 120_000 }, () => {
  const HEARTBEAT_TIMEOUT_S = 1.5;
  const STALE_S = 2;
  let reg: RunningService;
  let mocks: RunningService[];
  let feed: FeedRecorder;
  const mockNames = ['hb-a', 'hb-b', 'hb-c', 'hb-d'];
  /** Every request bounded, so a registry that stops answering fails the test with its log tail. */
  const call = async (method: string, path: string, body?: unknown) => {
    const timeout = new Promise<never>((_, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method} ${path} got no answer in 10 s; registry log:\n${reg.stderrText.slice(-3000)}`)), 10_000);
      timer.unref();
    });
    return Promise.race([http(method, `${reg.url}${path}`, body === undefined ? {} : { body }), timeout]);
  };
  const list = async () => (await call('GET', '/services')).body.services as any[];

  before(async () => {
    reg = await startRegistry(['--heartbeat-timeout', String(HEARTBEAT_TIMEOUT_S), '--stale-timeout', String(STALE_S), '--cleanup-interval', '0.5', '--health-interval', '600']);
    mocks = await startMocks(mockNames.map((name) => ({ models: 'm', name, args: ['--registry-url', reg.url, '--heartbeat-interval', '0.25'] })));
    await waitFor(async () => (await list()).filter((s) => s.is_healthy).length === mockNames.length, 'every mock registered and healthy');
    feed = await FeedRecorder.open(`${reg.url}/events`);
  });
  after(async () => {
    feed?.close();
    await Promise.all([reg?.stop(), ...(mocks ?? []).map((m) => m.stop())]);
  });

  it('SIGSTOP for several stale timeouts: nothing is evicted or flips, heartbeats resume', { timeout: 90_000 }, async () => {
    reg.signal('SIGSTOP');
    await pauseFor(4 * STALE_S * 1000);
    reg.signal('SIGCONT');
    const resumedAt = Date.now() / 1000;
    // Keep it running with heartbeats flowing for five stale timeouts, checking throughout.
    await waitFor(
      async () => {
        const services = await list();
        assert.deepEqual(services.map((s) => s.name), mockNames, 'no record deleted');
        assert.ok(services.every((s) => s.is_healthy), 'every record healthy');
        return services.every((s) => s.last_heartbeat >= resumedAt + 5 * STALE_S);
      },
      'five stale timeouts of heartbeats after the pause',
      30_000,
      100,
    );
    assert.deepEqual(feed.events, [], 'no put, delete or health event reached the watcher');
    const pause = reg.logs.find((l) => l.msg?.startsWith('registry was not running'));
    assert.ok(pause && (pause.paused_ms as number) >= 4 * STALE_S * 1000 - 500, JSON.stringify(pause));
    assert.ok(!reg.logs.some((l) => l.msg?.startsWith('self-preservation')), 'the pause was credited, not held');
  });

  it('still evicts a service that really stopped heartbeating', async () => {
    assert.equal((await call('POST', '/services', { name: 'ghost', host: '127.0.0.1', port: 1, url: 'http://127.0.0.1:1', status: 'running' })).status, 201);
    await waitFor(() => feed.of('delete', 'ghost').length === 1, 'ghost evicted', 20_000);
    assert.deepEqual(feed.events.map((e) => `${e.type}:${e.service.name}${e.type === 'health' ? `=${e.service.is_healthy}` : ''}`), ['put:ghost', 'health:ghost=false', 'delete:ghost']);
    assert.ok(reg.logs.some((l) => l.msg === 'removed stale service' && l.service === 'ghost'));
  });

  it('holds a mass loss for one stale timeout, then expires and evicts it', { timeout: 90_000 }, async () => {
    feed.events.length = 0;
    await Promise.all(mocks.map((m) => m.stop('SIGKILL')));
    await waitFor(() => feed.of('delete').length === mockNames.length, 'every killed mock evicted', 30_000);
    const flips = feed.of('health').filter((e) => e.service.is_healthy === false);
    assert.equal(flips.length, mockNames.length, 'each turned unhealthy once');
    const held = reg.logs.find((l) => l.msg?.startsWith('self-preservation: most services went silent'));
    const ended = reg.logs.find((l) => l.msg?.startsWith('self-preservation ended without heartbeats resuming'));
    assert.ok(held && ended, 'the hold was logged with its reason');
    const endIndex = ended.feed_index as number;
    // Up to two silent of four expire normally (fewer when heartbeats were read within the same
    // millisecond and cross together); the third silence is a mass and waits for the hold to end.
    const early = flips.filter((e) => e.index <= endIndex).length;
    assert.ok(early <= 2, `${early} flipped before the hold ended`);
    assert.ok(flips.filter((e) => e.index > endIndex).length >= 2);
    assert.ok((held.feed_index as number) <= endIndex);
    assert.ok(feed.of('delete').every((e) => e.index > endIndex), 'nothing evicted during the hold');
    assert.ok(!feed.of('put').length, 'nothing re-registered');
  });
});
