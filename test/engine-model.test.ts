/** The mock's continuous-batching engine model, in virtual time (and once in real time). */
import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { RealTimeDriver, VirtualTime } from '../src/mock/engine-driver.js';
import { EngineModel, realClock, type EngineRequest, type RequestSpec, type RequestSummary, type StepInfo } from '../src/mock/engine-model.js';
import { ENGINE_PROFILES, stepDurationMs, type EngineProfile } from '../src/mock/engine-profiles.js';
import { chainedBlockHashes, KvBlockPool, type BlockList } from '../src/mock/kv-blocks.js';
import { PrefixCache } from '../src/mock/prefix-cache.js';
import { mulberry32 } from '../src/mock/text-generator.js';

/** Token ids of a prompt: `shared` leading tokens of prefix `prefix`, then tokens unique to `seed`. */
function promptIds(n: number, seed: number, prefix = -1, shared = 0): number[] {
  const rnd = mulberry32(seed + 1_000_003);
  const pre = mulberry32(prefix + 7);
  return Array.from({ length: n }, (_, i) => Math.floor((i < shared ? pre() : rnd()) * 2 ** 31));
}

function engineWith(overrides: Partial<EngineProfile> = {}, base: EngineProfile = ENGINE_PROFILES['h100-8b']) {
  const clock = new VirtualTime();
  const engine = new EngineModel({ ...base, ...overrides }, clock);
  return { clock, engine };
}

/** What a request's handlers saw. */
interface Seen {
  req: EngineRequest;
  spec: RequestSpec;
  indices: number[];
  times: number[];
  firstTokenMs?: number;
  firstTokenCalls: number;
  summary?: RequestSummary;
  finishCalls: number;
}

function submit(engine: EngineModel, spec: RequestSpec): Seen {
  const seen: Seen = { req: undefined!, spec, indices: [], times: [], firstTokenCalls: 0, finishCalls: 0 };
  seen.req = engine.submit(spec, {
    onFirstToken: (t) => {
      seen.firstTokenMs = t;
      seen.firstTokenCalls++;
    },
    onToken: (i, t) => {
      seen.indices.push(i);
      seen.times.push(t);
    },
    onFinish: (s) => {
      seen.summary = s;
      seen.finishCalls++;
    },
  });
  return seen;
}

/** Runs to the end, auditing the KV cache and the step budget after every event; returns the steps planned. */
function runChecked(clock: VirtualTime, engine: EngineModel): StepInfo[] {
  const steps: StepInfo[] = [];
  const p = engine.profile;
  while (clock.next([engine])) {
    engine.audit();
    assert.ok(engine.pool.used + engine.pool.cached <= p.kvBlocks, 'blocks within capacity');
    assert.ok(engine.pool.cached <= p.cacheBlocks, 'cache within its bound');
    assert.ok(engine.kvUsage >= 0 && engine.kvUsage <= 1);
    assert.ok(engine.numRunning <= p.maxRunning);
    const s = engine.currentStep;
    if (s !== undefined && s !== steps.at(-1)) {
      assert.ok(s.prefillTokens + s.decodeSeqs <= p.maxBatchedTokens, 'step within its token budget');
      assert.ok(s.prefillTokens + s.decodeSeqs > 0);
      steps.push(s);
    }
  }
  return steps;
}

function assertComplete(all: Seen[]): void {
  for (const s of all) {
    const n = s.spec.maxTokens;
    assert.deepEqual(s.indices, Array.from({ length: n }, (_, i) => i), `request ${s.req.id}: every token once, in order`);
    for (let i = 1; i < s.times.length; i++) assert.ok(s.times[i]! > s.times[i - 1]! || (s.times[i] === s.times[i - 1] && s.times[i] === 0), 'one token a step');
    assert.equal(s.firstTokenCalls, 1);
    assert.equal(s.firstTokenMs, s.times[0]);
    assert.equal(s.finishCalls, 1);
    assert.equal(s.summary!.outputTokens, n);
    assert.equal(s.summary!.finishMs, s.times.at(-1));
    assert.equal(s.req.state, 'finished');
  }
}


describe('engine model: conservation and order', () => {
  it('emits every token exactly once, in order, and finishes each request with maxTokens tokens', () => {
    const { clock, engine } = engineWith();
    const rnd = mulberry32(1);
    const all: Seen[] = [];
    let t = 0;
    for (let i = 0; i < 60; i++) {
      t += rnd() * 40;
      const promptTokens = 1 + Math.floor(rnd() * 3000);
      const maxTokens = 1 + Math.floor(rnd() * 200);
      clock.at(t, () => all.push(submit(engine, { promptTokens, maxTokens, blockHashes: chainedBlockHashes(promptIds(promptTokens, i, i % 3, 500), 16) })));
    }
    runChecked(clock, engine);
    assert.equal(all.length, 60);
    assertComplete(all);
    const total = all.reduce((n, s) => n + s.spec.maxTokens, 0);
    assert.equal(engine.stats.generationTokens, total);
    assert.equal(engine.stats.finished, 60);
    assert.equal(engine.stats.ttft.count, 60);
    assert.equal(engine.stats.itl.count, total - 60);
    assert.equal(engine.nextEventTime(), undefined, 'idle at the end');
    assert.equal(engine.pool.used, 0, 'every block given back');
    assert.equal(engine.numRunning + engine.numWaiting, 0);
  });

  it('serves identical requests first come, first served', () => {
    const { clock, engine } = engineWith();
    const all = Array.from({ length: 20 }, () => submit(engine, { promptTokens: 3000, maxTokens: 20 }));
    runChecked(clock, engine);
    assertComplete(all);
    for (let i = 1; i < all.length; i++) assert.ok(all[i]!.firstTokenMs! >= all[i - 1]!.firstTokenMs!, `request ${i} not served before ${i - 1}`);
    assert.ok(all.at(-1)!.firstTokenMs! > all[0]!.firstTokenMs!);
  });

  it('takes each step the time of the documented formula', () => {
    const profile: EngineProfile = { stepMs: 2, prefillMsPerToken: 0.5, decodeMsPerSeq: 0.25, maxBatchedTokens: 8192, maxRunning: 8, kvBlocks: 100, blockSize: 16, cacheBlocks: 100 };
    assert.equal(stepDurationMs(profile, 10, 0), 7);
    assert.equal(stepDurationMs(profile, 0, 3), 2.75);
    assert.equal(stepDurationMs(profile, 0, 0), 0);
    const clock = new VirtualTime();
    const engine = new EngineModel(profile, clock);
    const a = submit(engine, { promptTokens: 10, maxTokens: 3 });
    clock.run([engine]);
    assert.deepEqual(a.times, [7, 9.25, 11.5]);
    assert.equal(engine.stats.ttft.sum, 7);
    assert.equal(engine.stats.itl.mean, 2.25);
    assert.equal(engine.stats.busyMs, 11.5);
  });

  it('the fast profile takes no time at all', () => {
    const { clock, engine } = engineWith({}, ENGINE_PROFILES.fast);
    const all = Array.from({ length: 10 }, (_, i) => submit(engine, { promptTokens: 100 + i, maxTokens: 5 + i }));
    runChecked(clock, engine);
    assertComplete(all);
    for (const s of all) assert.equal(s.summary!.finishMs, 0);
    assert.equal(clock.now(), 0);
  });
});

describe('engine model: zero-time bursts', () => {
  /** Runs the same arrivals step by step and in bursts; returns what each saw and the engines. */
  function both(burst: number, cancelAt?: number) {
    return [1, burst].map((maxZeroTimeBurst) => {
      const clock = new VirtualTime();
      const engine = new EngineModel({ ...ENGINE_PROFILES.fast, kvBlocks: 200 }, clock, { maxZeroTimeBurst });
      const rnd = mulberry32(5);
      const all: Seen[] = [];
      for (let i = 0; i < 40; i++) {
        const promptTokens = 1 + Math.floor(rnd() * 300);
        const maxTokens = 1 + Math.floor(rnd() * 120);
        clock.at(Math.floor(i / 8), () => {
          const seen = submit(engine, { promptTokens, maxTokens, blockHashes: chainedBlockHashes(promptIds(promptTokens, i, i % 2, 40), 16) });
          if (cancelAt !== undefined && i % 5 === 0) {
            // a handler that cancels its own request at token `cancelAt`
            const h = (seen.req as unknown as { handlers: { onToken: (i: number, t: number) => void } }).handlers;
            const onToken = h.onToken;
            h.onToken = (k, t) => {
              onToken(k, t);
              if (k === cancelAt) seen.req.cancel();
            };
          }
          all.push(seen);
        });
      }
      let events = 0;
      while (clock.next([engine])) {
        engine.audit();
        events++;
      }
      return { all, engine, events };
    });
  }

  /** Every token once, in order, and a finish (times: arrivals come at 0 to 4 ms, steps take none). */
  const complete = (s: Seen) => {
    assert.deepEqual(s.indices, Array.from({ length: s.spec.maxTokens }, (_, i) => i));
    assert.equal(s.finishCalls, 1);
    assert.equal(s.req.state, 'finished');
  };

  it('emit the same tokens at the same times as step by step, in fewer steps', () => {
    const [one, burst] = both(64);
    one!.all.forEach(complete);
    burst!.all.forEach(complete);
    for (let i = 0; i < one!.all.length; i++) {
      assert.deepEqual(burst!.all[i]!.indices, one!.all[i]!.indices);
      assert.deepEqual(burst!.all[i]!.times, one!.all[i]!.times);
      assert.deepEqual(burst!.all[i]!.summary, one!.all[i]!.summary);
    }
    const a = one!.engine.stats;
    const b = burst!.engine.stats;
    assert.deepEqual([b.steps, b.generationTokens, b.prefixHits, b.prefixQueries, b.preemptions, b.itl.count, b.ttft.count], [a.steps, a.generationTokens, a.prefixHits, a.prefixQueries, a.preemptions, a.itl.count, a.ttft.count]);
    assert.ok(burst!.events < one!.events / 2, `bursts: ${burst!.events} events against ${one!.events}`);
    assert.equal(burst!.engine.pool.used, 0);
  });

  it('stop when a handler cancels its own request', () => {
    const [, burst] = both(64, 3);
    for (const [i, s] of burst!.all.entries()) {
      if (i % 5 === 0 && s.spec.maxTokens > 4) {
        assert.deepEqual(s.indices, [0, 1, 2, 3]);
        assert.equal(s.req.state, 'cancelled');
        assert.equal(s.finishCalls, 0);
      } else complete(s);
    }
    assert.equal(burst!.engine.pool.used, 0);
  });
});

describe('engine model: load', () => {
  it('queueing grows time to first token: more concurrent requests, larger mean TTFT', () => {
    const ttft: number[] = [];
    const itl: number[] = [];
    for (const n of [1, 4, 16, 64, 256]) {
      const { clock, engine } = engineWith();
      for (let i = 0; i < n; i++) submit(engine, { promptTokens: 1000, maxTokens: 50 });
      runChecked(clock, engine);
      ttft.push(engine.stats.ttft.mean);
      itl.push(engine.stats.itl.mean);
    }
    assert.equal(ttft[0], 5 + 1000 * 0.035, 'alone: one step of overhead and 1000 prompt tokens');
    for (let i = 1; i < ttft.length; i++) assert.ok(ttft[i]! > ttft[i - 1]!, `mean TTFT ${ttft.join(' < ')}`);
    assert.ok(itl.at(-1)! > 2 * itl[0]!, `inter-token latency grows with the batch: ${itl.join(', ')}`);
  });

  it('splits a prompt longer than the step budget into chunks, and keeps decoding alongside', () => {
    const fastSteps: Partial<EngineProfile> = { stepMs: 1, prefillMsPerToken: 0.001, decodeMsPerSeq: 0.01 };
    {
      const { clock, engine } = engineWith(fastSteps);
      const long = submit(engine, { promptTokens: 20_000, maxTokens: 2 });
      const steps = runChecked(clock, engine);
      assert.deepEqual(steps.map((s) => s.prefillTokens), [8192, 8192, 3616, 0]);
      assert.equal(long.firstTokenMs, steps[2]!.endMs);
      assert.ok(Math.abs(long.firstTokenMs! - (3 + 20)) < 1e-9, 'three steps: 3 x 1 ms + 20,000 x 0.001 ms');
    }
    {
      const { clock, engine } = engineWith(fastSteps);
      const short = submit(engine, { promptTokens: 10, maxTokens: 50 });
      const long = submit(engine, { promptTokens: 20_000, maxTokens: 2 });
      const steps = runChecked(clock, engine);
      assert.deepEqual(steps.slice(0, 4).map((s) => [s.prefillTokens, s.decodeSeqs]), [[8192, 0], [8191, 1], [3627, 1], [0, 2]]);
      const before = short.times.filter((t) => t <= long.firstTokenMs!).length;
      assert.equal(before, 3, 'the short request got a token at every step of the long prefill');
      assertComplete([short, long]);
    }
  });

  it('respects maxRunning: the others wait', () => {
    const { clock, engine } = engineWith({ maxRunning: 3 });
    const all = Array.from({ length: 10 }, () => submit(engine, { promptTokens: 10, maxTokens: 5 }));
    let most = 0;
    while (clock.next([engine])) most = Math.max(most, engine.numRunning);
    assert.equal(most, 3);
    assertComplete(all);
  });
});

describe('engine model: prefix cache', () => {
  const P = 2000;
  const ids = promptIds(P, 42);
  const hashes = chainedBlockHashes(ids, 16);

  it('a repeated prompt hits the cache: hits counted in tokens, only the rest prefilled, lower TTFT', () => {
    const { clock, engine } = engineWith();
    const a = submit(engine, { promptTokens: P, maxTokens: 10, blockHashes: hashes });
    clock.run([engine]);
    clock.at(1000, () => undefined);
    clock.run([engine]);
    const b = submit(engine, { promptTokens: P, maxTokens: 10, blockHashes: hashes });
    clock.run([engine]);
    const c = submit(engine, { promptTokens: P, maxTokens: 10, blockHashes: chainedBlockHashes(promptIds(P, 43), 16) });
    runChecked(clock, engine);
    const hit = Math.floor((P - 1) / 16) * 16; // whole blocks, one token short of the end
    assert.equal(a.summary!.cachedTokens, 0);
    assert.equal(b.summary!.cachedTokens, hit);
    assert.equal(c.summary!.cachedTokens, 0);
    assert.equal(engine.stats.prefixQueries, 3 * P);
    assert.equal(engine.stats.prefixHits, hit);
    assert.equal(engine.stats.prefillTokens, 3 * P - hit);
    const ttft = (s: Seen) => s.summary!.firstTokenMs - s.summary!.arrivalMs;
    assert.equal(ttft(a), 5 + P * 0.035);
    const close = (x: number, y: number) => assert.ok(Math.abs(x - y) < 1e-9, `${x} != ${y}`);
    close(ttft(b), 5 + (P - hit) * 0.035);
    close(ttft(c), ttft(a));
  });

  it('shares the blocks of a prompt still running, and shares no block with caching off', () => {
    for (const cacheBlocks of [25_000, 0]) {
      const { clock, engine } = engineWith({ cacheBlocks });
      const a = submit(engine, { promptTokens: P, maxTokens: 100, blockHashes: hashes });
      let b: Seen | undefined;
      clock.at(200, () => (b = submit(engine, { promptTokens: P, maxTokens: 10, blockHashes: hashes })));
      clock.at(230, () => {
        assert.equal(a.req.state, 'running');
        assert.equal(b!.req.state, 'running');
        // a holds ~127 blocks; b, sharing 124 of them, adds 1, or 125 without caching
        if (cacheBlocks > 0) assert.ok(engine.pool.used < 140, `${engine.pool.used} blocks used`);
        else assert.ok(engine.pool.used >= 250, `${engine.pool.used} blocks used`);
      });
      runChecked(clock, engine);
      assertComplete([a, b!]);
      assert.equal(b!.summary!.cachedTokens, cacheBlocks > 0 ? 1984 : 0);
      if (cacheBlocks === 0) assert.equal(engine.pool.cached, 0);
    }
  });

  it('evicts least recently used blocks beyond cacheBlocks, a prompt\'s tail before its head', () => {
    // 2000 tokens = 125 full blocks; the cache keeps 130
    const { clock, engine } = engineWith({ cacheBlocks: 130 });
    const a1 = submit(engine, { promptTokens: P, maxTokens: 1, blockHashes: hashes });
    clock.run([engine]);
    const b = submit(engine, { promptTokens: P, maxTokens: 1, blockHashes: chainedBlockHashes(promptIds(P, 44), 16) });
    clock.run([engine]);
    assert.equal(engine.pool.cached, 130);
    const a2 = submit(engine, { promptTokens: P, maxTokens: 1, blockHashes: hashes });
    runChecked(clock, engine);
    assert.equal(a1.summary!.cachedTokens, 0);
    assert.equal(b.summary!.cachedTokens, 0);
    assert.equal(a2.summary!.cachedTokens, 5 * 16, 'the 5 leading blocks of the first prompt survived');
  });

  it('KV block pool: blocks come from empty ones first, then from the oldest cached; duplicates stay private', () => {
    const pool = new KvBlockPool(4, 16, 4);
    const x: BlockList = [];
    assert.ok(pool.allocate(2, x));
    x[0] = pool.register(101);
    x[1] = pool.register(102);
    const y: BlockList = [];
    assert.ok(pool.allocate(1, y));
    assert.equal(pool.register(101), undefined, 'a second copy of a block is not indexed');
    pool.release(x);
    assert.deepEqual([pool.used, pool.cached, pool.empty], [1, 2, 1]);
    assert.deepEqual(pool.match([101, 102, 103], 3), { blocks: 2, cachedBlocks: 2 });
    const z: BlockList = [];
    assert.ok(pool.allocate(2, z), 'one empty block, then one evicted');
    assert.deepEqual(pool.match([101, 102], 2), { blocks: 1, cachedBlocks: 1 }, '102 (released first, so older) was evicted; 101 kept');
    assert.ok(!pool.allocate(2, z), 'only one block left');
    assert.equal(z.length, 2, 'a failed allocation takes nothing');
    pool.audit([y, z]);
  });

  it('hashes blocks like the mock\'s prefix cache', () => {
    assert.deepEqual(chainedBlockHashes(ids, 16), new PrefixCache(16, 10).blockKeys(ids));
    assert.equal(chainedBlockHashes(ids.slice(0, 31), 16).length, 1, 'a partial block has no hash');
  });
});

describe('engine model: KV pressure and cancellation', () => {
  it('preempts the newest running request when a decode finds no free block; the victim still completes', () => {
    // 4 requests of 100 prompt + 200 output tokens need 19 blocks each at the end; there are 40
    const { clock, engine } = engineWith({ kvBlocks: 40, cacheBlocks: 40 });
    const all = Array.from({ length: 4 }, (_, i) => submit(engine, { promptTokens: 100, maxTokens: 200, blockHashes: chainedBlockHashes(promptIds(100, i), 16) }));
    runChecked(clock, engine);
    assertComplete(all);
    assert.ok(engine.stats.preemptions > 0);
    assert.equal(all[0]!.req.preemptions, 0, 'the oldest is never the victim');
    assert.ok(all[3]!.req.preemptions >= 1, 'the newest is');
    assert.equal(engine.stats.preemptions, all.reduce((n, s) => n + s.req.preemptions, 0));
    assert.equal(engine.stats.generationTokens, 800, 'recompute emits no token twice');
    assert.ok(engine.stats.prefillTokens > 400, 'preempted requests prefilled again');
  });

  it('keeps new requests waiting while the cache is full', () => {
    const { clock, engine } = engineWith({ kvBlocks: 20, cacheBlocks: 0 });
    const a = submit(engine, { promptTokens: 200, maxTokens: 100 }); // 13 blocks, up to 19
    const b = submit(engine, { promptTokens: 200, maxTokens: 10 }); // 13 blocks: does not fit beside a
    clock.next([engine]);
    assert.equal(engine.numRunning, 1);
    assert.equal(engine.numWaiting, 1);
    runChecked(clock, engine);
    assertComplete([a, b]);
    assert.ok(b.firstTokenMs! > a.times.at(-1)! - 1e-9, 'b started once a had finished');
  });

  it('cancel frees a running request\'s blocks at once and silences it; a waiting one never runs', () => {
    const { clock, engine } = engineWith({ maxRunning: 1 });
    const a = submit(engine, { promptTokens: 1000, maxTokens: 100, blockHashes: chainedBlockHashes(promptIds(1000, 9), 16) });
    const b = submit(engine, { promptTokens: 1000, maxTokens: 100 });
    while (a.indices.length < 10) clock.next([engine]);
    assert.ok(engine.pool.used > 0);
    b.req.cancel();
    assert.equal(b.req.state, 'cancelled');
    assert.equal(engine.numWaiting, 0);
    a.req.cancel();
    a.req.cancel(); // twice is harmless
    assert.equal(engine.pool.used, 0, 'no block held any more');
    assert.equal(engine.pool.cached, 62, 'the full prompt blocks stay in the prefix cache');
    runChecked(clock, engine);
    assert.equal(a.indices.length, 10);
    assert.deepEqual([a.req.state, a.req.generated, engine.stats.generationTokens], ['cancelled', 10, 10], 'the step in flight did not count it');
    assert.equal(a.finishCalls + b.finishCalls + b.indices.length, 0);
    assert.equal(engine.stats.cancelled, 2);
    assert.equal(engine.nextEventTime(), undefined);
  });

  it('handlers may cancel and submit; a request cancelled by an earlier handler of the same step hears nothing more', () => {
    const { clock, engine } = engineWith();
    let cancelledAt = -1;
    let c: Seen | undefined;
    let b: Seen | undefined;
    engine.submit(
      { promptTokens: 10, maxTokens: 20 },
      {
        onToken: (i, t) => {
          if (i === 5) {
            b!.req.cancel();
            cancelledAt = t;
          }
        },
        onFinish: () => (c = submit(engine, { promptTokens: 10, maxTokens: 3 })),
      },
    );
    // submitted second: its tokens are emitted after the first request's in every step
    b = submit(engine, { promptTokens: 10, maxTokens: 100 });
    runChecked(clock, engine);
    assert.ok(cancelledAt > 0);
    assert.ok(b.times.length >= 5 && b.times.every((t) => t < cancelledAt));
    assert.equal(b.req.state, 'cancelled');
    assertComplete([c!]);
  });

  it('refuses a request that can never fit and bad counts; refuses step() from a handler', () => {
    const { clock, engine } = engineWith({ kvBlocks: 10 });
    // 10 blocks of 16 hold 160 tokens; the last sampled token needs no KV
    assert.equal(engine.fits(100, 62), false);
    assert.equal(engine.fits(100, 61), true);
    assert.throws(() => engine.submit({ promptTokens: 100, maxTokens: 62 }), RangeError);
    assert.throws(() => engine.submit({ promptTokens: 0, maxTokens: 1 }), RangeError);
    assert.throws(() => engine.submit({ promptTokens: 1.5, maxTokens: 1 }), RangeError);
    assert.throws(() => engine.submit({ promptTokens: 1, maxTokens: NaN }), RangeError);
    assert.throws(() => new EngineModel({ ...ENGINE_PROFILES.fast, maxBatchedTokens: 0 }), RangeError);
    const ok = submit(engine, { promptTokens: 10, maxTokens: 2 });
    engine.submit({ promptTokens: 10, maxTokens: 2 }, { onFirstToken: () => engine.step() });
    assert.throws(() => clock.run([engine]), /step\(\) called from a request handler/);
    clock.run([engine]);
    assertComplete([ok]);
  });
});

describe('engine model: real time', () => {
  it('a RealTimeDriver runs requests to the end on the wall clock', async () => {
    for (const profile of [ENGINE_PROFILES.fast, { ...ENGINE_PROFILES.fast, stepMs: 1 }]) {
      const engine = new EngineModel(profile, realClock, { catchUpMs: 5 });
      const errors: unknown[] = [];
      const driver = new RealTimeDriver(engine, (err) => errors.push(err));
      const done = Array.from(
        { length: 5 },
        (_, i) => new Promise<RequestSummary>((resolve) => engine.submit({ promptTokens: 100, maxTokens: 5 + i * 40 }, { onFinish: resolve })),
      );
      const summaries = await Promise.all(done);
      driver.stop();
      assert.deepEqual(errors, []);
      assert.deepEqual(summaries.map((s) => s.outputTokens), [5, 45, 85, 125, 165]);
      if (profile.stepMs > 0) for (const s of summaries) assert.ok(s.finishMs - s.arrivalMs >= s.outputTokens * profile.stepMs - 1e-9);
      assert.equal(engine.nextEventTime(), undefined);
    }
  });
});
