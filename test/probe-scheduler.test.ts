/**
 * The health-probe scheduler shared by the registry's prober and the router's checker, driven by
 * a fake clock (unit), and checkHttp against real sockets on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { describe, it } from './helpers/test.js';
import { ProbeScheduler, type ProbeOutcome, type ProbeSchedulerOptions, type SchedulerClock } from '../src/common/probe-scheduler.js';
import { checkHttp } from '../src/common/http-probe.js';

/** A clock whose time moves only when told to; due timers run in order, with the microtasks they start. */
class FakeClock implements SchedulerClock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Moves time forward to `ms` from now, firing timers at their times. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[0] < next[0]))) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

interface Harness {
  clock: FakeClock;
  scheduler: ProbeScheduler<string>;
  /** Every probe start: key and fake time. */
  starts: Array<{ key: string; at: number }>;
  maxInFlight: () => number;
}

/** A scheduler whose probes take `latencyMs` of fake time and end as `outcome(key)` says. */
function harness(opts: Partial<ProbeSchedulerOptions<string>> & { latencyMs?: number; outcome?: (key: string) => ProbeOutcome } = {}): Harness {
  const clock = new FakeClock();
  const starts: Array<{ key: string; at: number }> = [];
  let inFlight = 0;
  let max = 0;
  let seed = 1;
  const scheduler = new ProbeScheduler<string>({
    intervalMs: 10_000,
    concurrency: 8,
    first: 'now',
    inconclusiveRetryMs: 1_000,
    onError: (err) => assert.fail(String(err)),
    clock,
    // deterministic jitter
    random: () => ((seed = (Math.imul(seed, 48271) >>> 0) % 2147483647) / 2147483647),
    probe: (key) => {
      starts.push({ key, at: clock.now() });
      inFlight++;
      max = Math.max(max, inFlight);
      return new Promise<ProbeOutcome>((resolve) =>
        clock.setTimer(() => {
          inFlight--;
          resolve(opts.outcome?.(key) ?? 'ok');
        }, opts.latencyMs ?? 0),
      );
    },
    ...opts,
  });
  return { clock, scheduler, starts, maxInFlight: () => max };
}

const names = (n: number, prefix = 'svc-') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('probe scheduler (fake clock)', () => {
  it('never has more probes under way than its concurrency, also with every target due at once', async () => {
    const h = harness({ concurrency: 8, latencyMs: 50, first: 'now' });
    for (const k of names(1000)) h.scheduler.add(k, k);
    h.scheduler.start();
    await h.clock.advance(1_000);
    assert.equal(h.maxInFlight(), 8);
    assert.ok(h.scheduler.stats().in_flight <= 8);
    // 8 at a time, 50 ms each: the backlog drains at 160 per second, the oldest first
    assert.ok(h.starts.length >= 150 && h.starts.length <= 170, String(h.starts.length));
    await h.clock.advance(60_000);
    assert.equal(h.maxInFlight(), 8);
    assert.equal(new Set(h.starts.map((s) => s.key)).size, 1000, 'every target was probed');
  });

  it('spreads probes over the interval: each target once per interval, per-second load N / interval, no burst', async () => {
    const n = 10_000;
    const interval = 10_000;
    const h = harness({ intervalMs: interval, concurrency: 64, first: 'slot' });
    for (const k of names(n)) h.scheduler.add(k, k);
    h.scheduler.start();
    await h.clock.advance(5 * interval);
    const perKey = new Map<string, number[]>();
    for (const s of h.starts) {
      let list = perKey.get(s.key);
      if (!list) perKey.set(s.key, (list = []));
      list.push(s.at);
    }
    assert.equal(perKey.size, n);
    // first probe of a new target: within one interval (at its phase, give or take the jitter)
    for (const times of perKey.values()) assert.ok(times[0]! <= 1.05 * interval, `first probe at ${times[0]}`);
    // then once per interval, give or take the jitter
    for (const times of perKey.values()) {
      assert.ok(times.length >= 4 && times.length <= 6, `${times.length} probes in 5 intervals`);
      for (let i = 1; i < times.length; i++) {
        const gap = times[i]! - times[i - 1]!;
        assert.ok(gap >= 0.88 * interval && gap <= 1.12 * interval, `gap ${gap}`);
      }
    }
    // load per second: N / interval = 1000, in every second
    const perSecond = new Map<number, number>();
    for (const s of h.starts) perSecond.set(Math.floor(s.at / 1000), (perSecond.get(Math.floor(s.at / 1000)) ?? 0) + 1);
    const expected = n / (interval / 1000);
    for (let sec = 1; sec < 49; sec++) {
      const count = perSecond.get(sec) ?? 0;
      assert.ok(Math.abs(count - expected) < 0.2 * expected, `second ${sec}: ${count} probes, expected about ${expected}`);
    }
  });

  it('probes a new target at once (first: now) and a removed one never again, also when removed mid-probe', async () => {
    const h = harness({ intervalMs: 1_000, latencyMs: 100, first: 'now' });
    h.scheduler.start();
    for (const k of names(20)) h.scheduler.add(k, k);
    await h.clock.advance(3_000);
    const t = h.clock.now();
    h.scheduler.add('late', 'late');
    await h.clock.advance(10);
    assert.ok(h.starts.some((s) => s.key === 'late' && s.at === t), 'the new target was probed at once');
    // removed while idle
    h.scheduler.remove('svc-1');
    // removed while its probe is under way (it finishes, and is not rescheduled)
    let midProbe: string | undefined;
    for (let i = 0; i < 200 && !midProbe; i++) {
      await h.clock.advance(10);
      const last = h.starts.at(-1)!;
      if (last.key !== 'svc-1' && h.clock.now() - last.at < 100) midProbe = last.key;
    }
    assert.ok(midProbe);
    h.scheduler.remove(midProbe);
    const cut = h.clock.now();
    await h.clock.advance(10_000);
    for (const gone of ['svc-1', midProbe]) assert.ok(!h.starts.some((s) => s.key === gone && s.at > cut), `${gone} probed after removal`);
    assert.equal(h.scheduler.size, 19);
    assert.ok(!h.scheduler.has('svc-1'));
    // still probing the rest, once per interval
    assert.ok(h.starts.filter((s) => s.key === 'svc-2' && s.at > cut).length >= 9);
  });

  it('retries failures on their schedule (1, 2, 4, 5, 5 s), inconclusive probes soon and backing off, never counting them as failures', async () => {
    const outcomes = new Map<string, ProbeOutcome>([
      ['failing', 'failed'],
      ['unsure', 'inconclusive'],
      ['fine', 'ok'],
    ]);
    const h = harness({
      intervalMs: 60_000,
      first: 'now',
      failedRetryMs: (n) => Math.min(1000 * 2 ** (n - 1), 5000),
      outcome: (k) => outcomes.get(k)!,
    });
    for (const k of outcomes.keys()) h.scheduler.add(k, k);
    h.scheduler.start();
    await h.clock.advance(25_000);
    const at = (k: string) => h.starts.filter((s) => s.key === k).map((s) => s.at);
    const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);
    assert.deepEqual(gaps(at('failing')).slice(0, 6), [1000, 2000, 4000, 5000, 5000, 5000]);
    // inconclusive: 1 s, 2 s, 4 s, ... (each up to half as long again), never counted as failures
    const unsure = gaps(at('unsure'));
    assert.ok(unsure.length >= 3);
    unsure.forEach((g, i) => assert.ok(g >= 1000 * 2 ** i && g <= 1500 * 2 ** i, `inconclusive retry ${i}: ${g}`));
    assert.deepEqual(at('fine'), [0], 'a passing target waits for its slot, at least half an interval');
    const st = h.scheduler.stats();
    assert.equal(st.failed, at('failing').length);
    assert.equal(st.inconclusive, at('unsure').length);
    assert.equal(st.done, h.starts.length);
    assert.equal(st.concurrency, 8);
    // a failing target that passes again goes back to its regular slot
    outcomes.set('failing', 'ok');
    await h.clock.advance(6_000);
    const before = at('failing').length;
    await h.clock.advance(10_000);
    assert.equal(at('failing').length, before);
  });

  it('forgets a target whose probe says it is gone, and stop() waits for probes under way', async () => {
    const h = harness({ intervalMs: 1_000, latencyMs: 200, first: 'now', outcome: (k) => (k === 'ghost' ? 'gone' : 'ok') });
    h.scheduler.add('ghost', 'ghost');
    h.scheduler.add('real', 'real');
    h.scheduler.start();
    await h.clock.advance(5_000);
    assert.equal(h.starts.filter((s) => s.key === 'ghost').length, 1);
    assert.ok(!h.scheduler.has('ghost'));
    assert.equal(h.scheduler.stats().done, h.starts.length - 1, 'a gone target is not counted');
    // stop while a probe is under way
    let stopped = false;
    while (h.scheduler.stats().in_flight === 0) await h.clock.advance(10);
    const stopping = h.scheduler.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false);
    await h.clock.advance(200);
    await stopping;
    const n = h.starts.length;
    await h.clock.advance(5_000);
    assert.equal(h.starts.length, n, 'nothing probed after stop');
  });
});

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

/** Blocks this process's event loop for `ms`: the prober "too busy" to read its sockets. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('checkHttp', () => {
  it('reports the status, refusal, a timeout, and follows redirects', async () => {
    const ok = createServer((req, res) => {
      if (req.url === '/moved') return void res.writeHead(302, { location: '/health' }).end();
      res.writeHead(req.url === '/health' ? 200 : 404).end();
    });
    const hang = createServer(() => undefined);
    const okPort = await listen(ok);
    await listen(hang);
    try {
      assert.equal(await checkHttp(`http://127.0.0.1:${okPort}/health`, 2000), 200);
      assert.equal(await checkHttp(`http://127.0.0.1:${okPort}/nope`, 2000), 404);
      assert.equal(await checkHttp(`http://127.0.0.1:${okPort}/moved`, 2000), 200);
      hang.close();
      ok.close();
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(await checkHttp(`http://127.0.0.1:${okPort}/health`, 2000), 'refused');
      const hanging = createServer(() => undefined);
      const p = await listen(hanging);
      const t0 = performance.now();
      assert.equal(await checkHttp(`http://127.0.0.1:${p}/health`, 300), 'timeout');
      assert.ok(performance.now() - t0 < 2000);
      hanging.closeAllConnections();
      hanging.close();
      assert.equal(await checkHttp('not a url', 300), 'error');
    } finally {
      ok.closeAllConnections();
      hang.closeAllConnections();
      ok.close();
      hang.close();
    }
  });

  it('reads a head split over packets, and calls a hang-up or a non-HTTP answer an error', async () => {
    const raw = createNetServer((socket) => {
      socket.once('data', (req: Buffer) => {
        const path = req.toString('latin1').split(' ')[1];
        if (path === '/split') {
          socket.write('HTTP/1.1 204 No');
          setTimeout(() => socket.write(' Content\r\nX-A: b\r\n'), 20);
          setTimeout(() => socket.end('\r\n'), 40);
        } else if (path === '/hangup') socket.destroy();
        else socket.end('SSH-2.0-OpenSSH\r\n\r\n');
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const port = (raw.address() as { port: number }).port;
    try {
      assert.equal(await checkHttp(`http://127.0.0.1:${port}/split`, 2000), 204);
      assert.equal(await checkHttp(`http://127.0.0.1:${port}/hangup`, 2000), 'error');
      assert.equal(await checkHttp(`http://127.0.0.1:${port}/other`, 2000), 'error');
      assert.equal(await checkHttp(`ftp://127.0.0.1:${port}/`, 2000), 'error');
    } finally {
      raw.close();
    }
  });

  it('a timeout that fired late because this process was blocked is inconclusive, not a failure', async () => {
    const hang = createServer(() => undefined);
    const port = await listen(hang);
    try {
      const check = checkHttp(`http://127.0.0.1:${port}/health`, 200);
      await new Promise((r) => setTimeout(r, 20));
      blockFor(800);
      assert.equal(await check, 'inconclusive');
    } finally {
      hang.closeAllConnections();
      hang.close();
    }
  });

  it('an answer that arrived while this process was blocked past the timeout still counts', async () => {
    // the answering server lives in another process: it answers while this one is blocked
    const child = spawn(process.execPath, ['-e', "require('http').createServer((q,s)=>s.end('ok')).listen(0,'127.0.0.1',function(){console.log(this.address().port)})"], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = Number(await new Promise<string>((r) => child.stdout.once('data', (d: Buffer) => r(d.toString()))));
      assert.equal(await checkHttp(`http://127.0.0.1:${port}/health`, 2000), 200);
      // start a check, let its request go out, then block past its timeout while the answer arrives
      const check = checkHttp(`http://127.0.0.1:${port}/health`, 100);
      await new Promise((r) => setTimeout(r, 5));
      blockFor(600);
      const status = await check;
      assert.ok(status === 200 || status === 'inconclusive', `got ${status}: a late timeout is never a failure`);
    } finally {
      child.kill();
    }
  });
});
