/**
 * The benchmark's engines in virtual time (the mock's own EngineModel, no processes, no HTTP):
 * where round robin's capacity lies, so the real runs' request rates are placed around it
 * without a slow calibration in real time. Also an idealised prefix-affinity router (each shared
 * prefix stays where it first went), as an upper bound to compare the real cache policies with.
 */
import { VirtualTime } from '../src/mock/engine-driver.js';
import { EngineModel } from '../src/mock/engine-model.js';
import type { EngineProfile } from '../src/mock/engine-profiles.js';
import { chainedBlockHashes } from '../src/mock/kv-blocks.js';
import { fnv1a } from '../src/common/hash.js';
import { generate } from '../src/mock/text-generator.js';
import { tokenIds } from '../src/mock/tokenizer.js';
import { percentile } from './report.js';
import { mockChatPrompt, poissonArrivals, type MockAnswers, type WorkRequest, type Workload } from './routing-workloads.js';

/** The engine profile slowed down `scale` times: every time in it multiplied, capacities kept. */
export function scaleProfile(p: EngineProfile, scale: number): EngineProfile {
  return {
    ...p,
    stepMs: p.stepMs * scale,
    prefillMsPerToken: p.prefillMsPerToken * scale,
    decodeMsPerSeq: p.decodeMsPerSeq * scale,
    ...(p.prefillStepMs !== undefined ? { prefillStepMs: p.prefillStepMs * scale } : {}),
    ...(p.decodeStepMs !== undefined ? { decodeStepMs: p.decodeStepMs * scale } : {}),
  };
}

/**
 * What the mock submits to its engine for a chat request (src/mock/server.ts): the prompt's
 * token ids, `assistant:`, then the answer's, whose blocks a later turn quoting it can hit.
 */
export function mockSequence(r: WorkRequest, answers: MockAnswers): { promptTokens: number; ids: number[] } {
  const prompt = mockChatPrompt(r.messages);
  const ids = tokenIds(prompt + '\nassistant:');
  const promptTokens = ids.length;
  for (const t of generate({ ...answers, prompt }).tokens) ids.push(fnv1a(t.trim()));
  return { promptTokens, ids };
}

export interface ModelResult {
  requests: number;
  meanTtftMs: number;
  p99TtftMs: number;
  /** Prompt tokens found in the prefix cache / looked up. */
  hitRate: number;
}

/**
 * Runs `n` engines for `durationMs` of virtual time at `rate` requests a second (Poisson), the
 * first `warmMs` not measured; requests go round robin, or (`affinity`) each shared prefix to the
 * engine that first took it (least in flight), others to the least in flight.
 */
export function simulate(workload: Workload, opts: { profile: EngineProfile; engines: number; rate: number; durationMs: number; warmMs: number; answers: MockAnswers; seed: number; routing: 'round-robin' | 'affinity' }): ModelResult {
  const clock = new VirtualTime();
  const engines = Array.from({ length: opts.engines }, () => new EngineModel(opts.profile, clock));
  const inFlight = new Array<number>(opts.engines).fill(0);
  const home = new Map<number, number>();
  const ttfts: number[] = [];
  let rr = 0;
  const least = () => inFlight.indexOf(Math.min(...inFlight));
  for (const at of poissonArrivals(opts.rate, opts.durationMs, opts.seed)) {
    const r = workload.next();
    clock.at(at, () => {
      let e: number;
      if (opts.routing === 'round-robin') e = rr++ % opts.engines;
      else if (r.group < 0) e = least();
      else {
        e = home.get(r.group) ?? least();
        home.set(r.group, e);
      }
      const { promptTokens, ids } = mockSequence(r, opts.answers);
      inFlight[e]!++;
      engines[e]!.submit(
        { promptTokens, maxTokens: ids.length - promptTokens, blockHashes: chainedBlockHashes(ids, opts.profile.blockSize) },
        {
          onFirstToken: (t) => {
            if (at >= opts.warmMs) ttfts.push(t - at);
          },
          onFinish: () => inFlight[e]!--,
        },
      );
    });
  }
  // what is still queued when arrivals stop counts as it finishes, however late
  clock.run(engines);
  ttfts.sort((a, b) => a - b);
  const q = engines.reduce((n, e) => n + e.stats.prefixQueries, 0);
  const h = engines.reduce((n, e) => n + e.stats.prefixHits, 0);
  return { requests: ttfts.length, meanTtftMs: ttfts.reduce((a, b) => a + b, 0) / Math.max(1, ttfts.length), p99TtftMs: percentile(ttfts, 99), hitRate: q === 0 ? 0 : h / q };
}

/**
 * The highest rate (within 5%) at which `simulate` keeps p99 TTFT under `sloMs`, searched
 * geometrically from `startRate`.
 */
export function modelCapacity(make: () => Workload, opts: Omit<Parameters<typeof simulate>[1], 'rate'>, sloMs: number, startRate: number): number {
  const ok = (rate: number) => simulate(make(), { ...opts, rate }).p99TtftMs <= sloMs;
  let lo = startRate;
  let hi = startRate;
  if (ok(lo)) {
    while (ok((hi = lo * 2)) && hi < startRate * 1024) lo = hi;
  } else {
    while (!ok((lo = hi / 2)) && lo > startRate / 1024) hi = lo;
  }
  while (hi / lo > 1.05) {
    const mid = Math.sqrt(lo * hi);
    if (ok(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
