/**
 * The router's incremental backend index (backend-set.ts, backend-pool.ts) against rebuilds from
 * scratch, and its routing choices against a copy of the array-based policies it replaced, over
 * seeded random sequences of joins, leaves, model, weight and size-class changes, routability
 * changes (listing, health check, ejections that end by time) and requests (retries included).
 * Rendezvous hashing itself was array-based before and still is: the copy uses the router's own.
 */
import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import type { Backend, BackendSpec } from '../src/router/backend.js';
import type { ModelPool } from '../src/router/backend-pool.js';
import { BackendSet } from '../src/router/backend-set.js';
import { createPolicy } from '../src/router/policies/index.js';
import { LeastLoad, load } from '../src/router/policies/least-load.js';
import { PowerOfTwo } from '../src/router/policies/power-of-two.js';
import { rendezvous } from '../src/router/policies/session-affinity.js';
import type { RequestInfo } from '../src/router/request-info.js';
import { seededRandom } from './helpers/seeded-mutations.js';

const POOL = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000 };
const THRESHOLD = 100;
const MODELS = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'];
const NAMES = Array.from({ length: 40 }, (_, i) => `b${((i * 37) % 40).toString().padStart(2, '0')}`);
const CACHE_TYPES = [undefined, undefined, 'paged', 'static', 'static', 'other'];

// ---- the reference: the policies as they were before the incremental index (array candidates) ----

interface RefPolicy {
  select(candidates: readonly Backend[], info: RequestInfo): Backend | undefined;
  onBackendsChanged?(all: readonly Backend[]): void;
}

class RefWeightedRoundRobin implements RefPolicy {
  private readonly current = new Map<string, Map<Backend, number>>();
  private readonly plain = new Map<string, number>();

  select(candidates: readonly Backend[], info: RequestInfo): Backend | undefined {
    const n = candidates.length;
    if (n <= 1) return candidates[0];
    const key = info.model ?? '';
    let weights = this.current.get(key);
    if (!weights) this.current.set(key, (weights = new Map()));
    let total = 0;
    let best: Backend | undefined;
    let bestWeight = -Infinity;
    for (let i = 0; i < n; i++) {
      const b = candidates[i]!;
      if (b.weight <= 0) continue;
      const w = (weights.get(b) ?? 0) + b.weight;
      weights.set(b, w);
      total += b.weight;
      if (w > bestWeight) {
        bestWeight = w;
        best = b;
      }
    }
    if (best) {
      weights.set(best, bestWeight - total);
      return best;
    }
    const i = this.plain.get(key) ?? 0;
    this.plain.set(key, i + 1);
    return candidates[i % n];
  }

  onBackendsChanged(all: readonly Backend[]): void {
    const live = new Set(all);
    for (const weights of this.current.values()) for (const b of weights.keys()) if (!live.has(b)) weights.delete(b);
  }
}

class RefSessionAffinity implements RefPolicy {
  constructor(private readonly inner: RefPolicy) {}
  select(candidates: readonly Backend[], info: RequestInfo): Backend | undefined {
    if (info.sessionKey !== undefined && candidates.length > 1) return rendezvous(candidates, info.sessionKey);
    return this.inner.select(candidates, info);
  }
  onBackendsChanged(all: readonly Backend[]): void {
    this.inner.onBackendsChanged?.(all);
  }
}

class RefSizeClassFilter implements RefPolicy {
  constructor(
    private readonly thresholdBytes: number,
    private readonly inner: RefPolicy,
  ) {}
  select(candidates: readonly Backend[], info: RequestInfo): Backend | undefined {
    let typed = false;
    for (const b of candidates) {
      if (b.hasCacheType) {
        typed = true;
        break;
      }
    }
    if (!typed) return this.inner.select(candidates, info);
    const wanted = info.size > this.thresholdBytes ? 'static' : 'paged';
    const inClass = candidates.filter((b) => b.cacheType === wanted);
    return this.inner.select(inClass.length > 0 ? inClass : candidates, info);
  }
  onBackendsChanged(all: readonly Backend[]): void {
    this.inner.onBackendsChanged?.(all);
  }
}

class RefPowerOfTwo implements RefPolicy {
  constructor(private readonly random: () => number) {}
  select(candidates: readonly Backend[]): Backend | undefined {
    const n = candidates.length;
    if (n <= 1) return candidates[0];
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = candidates[i]!;
    const b = candidates[j]!;
    return load(b) < load(a) ? b : a;
  }
}

/** Today's candidates, from scratch: routable backends of the model, minus excluded, by name. */
function refCandidates(set: BackendSet, model: string | undefined, now: number, exclude?: ReadonlySet<Backend>): Backend[] {
  return set.all.filter((b) => (model === undefined || b.modelSet.has(model)) && b.routable(now) && !exclude?.has(b));
}

// ---- random fleets ----

/** A fleet driven by random operations on a fake clock; `spec` keeps each backend's description. */
class World {
  now = 1_000_000;
  readonly set: BackendSet;
  readonly specs = new Map<string, BackendSpec>();

  constructor(readonly rnd: () => number) {
    this.set = new BackendSet(POOL, { now: () => this.now });
  }

  pickOf<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)]!;
  }

  randomSpec(name: string): BackendSpec {
    const models = MODELS.filter(() => this.rnd() < 0.35);
    if (this.rnd() < 0.1) models.push(models[0] ?? 'm0'); // a duplicate: counts once
    const ct = this.pickOf(CACHE_TYPES);
    return {
      name,
      host: '127.0.0.1',
      port: 9000 + NAMES.indexOf(name),
      url: `http://127.0.0.1:${9000 + NAMES.indexOf(name)}`,
      weight: this.pickOf([0, 1, 1, 1, 2, 3]),
      metadata: { type: 'openai-api', models, ...(ct ? { cache_type: ct } : {}) },
      isStatic: false,
    };
  }

  /** One random change to the fleet; returns whether membership changed (join or leave). */
  step(): boolean {
    const r = this.rnd();
    const present = this.set.all;
    const b = present.length > 0 ? this.pickOf(present) : undefined;
    if (r < 0.2 || !b) {
      const name = this.pickOf(NAMES);
      const fresh = !this.specs.has(name);
      const spec = this.randomSpec(name);
      this.specs.set(name, spec);
      this.set.upsert(spec);
      return fresh;
    }
    if (r < 0.3) {
      this.set.remove(b.name);
      this.specs.delete(b.name);
      return true;
    }
    const spec = { ...this.specs.get(b.name)! };
    if (r < 0.4) spec.metadata = { ...spec.metadata, models: MODELS.filter(() => this.rnd() < 0.35) };
    else if (r < 0.5) spec.weight = this.pickOf([0, 1, 2, 3, 5]);
    else if (r < 0.55) {
      const ct = this.pickOf(CACHE_TYPES);
      const { cache_type: _, ...rest } = spec.metadata;
      spec.metadata = ct ? { ...rest, cache_type: ct } : rest;
    } else if (r < 0.62) b.listedHealthy = !b.listedHealthy;
    else if (r < 0.7) b.checkOk = !b.checkOk;
    else if (r < 0.78) b.recordFailure(1, this.now); // ejected for 30 s, 60 s, ...
    else if (r < 0.82) b.ejectedUntil = this.now + Math.floor(this.rnd() * 5000);
    else if (r < 0.86) b.endEjection();
    else if (r < 0.9) b.inFlight += this.rnd() < 0.5 && b.inFlight > 0 ? -1 : 1;
    else this.now += Math.floor(this.rnd() * (this.rnd() < 0.2 ? 60_000 : 2_000));
    this.specs.set(b.name, spec);
    this.set.upsert(spec);
    return false;
  }

  info(): RequestInfo {
    const r = this.rnd();
    const model = r < 0.1 ? undefined : r < 0.13 ? 'unknown-model' : this.pickOf(MODELS);
    return {
      model,
      stream: false,
      promptCacheKey: undefined,
      size: this.rnd() < 0.5 ? THRESHOLD + 1 : THRESHOLD,
      sessionKey: this.rnd() < 0.25 ? `${model}:session:${Math.floor(this.rnd() * 50)}` : undefined,
      body: undefined,
    };
  }

  /** A retry's already-tried backends: one or two of the request's candidates, sometimes. */
  exclude(info: RequestInfo): Set<Backend> | undefined {
    if (this.rnd() > 0.15) return undefined;
    const candidates = refCandidates(this.set, info.model, this.now);
    if (candidates.length === 0) return undefined;
    const out = new Set<Backend>([this.pickOf(candidates)]);
    if (this.rnd() < 0.5) out.add(this.pickOf(candidates));
    return out;
  }
}

const names = (list: readonly Backend[]) => list.map((b) => b.name);

/** Every list of the index equals the one a rebuild from scratch makes at `now`. */
function assertIndexMatchesRebuild(set: BackendSet, now: number, where: string): void {
  set.countRoutable(now); // ends the ejections that are over, as a request at `now` would
  const internals = set as unknown as { pools: Map<string, ModelPool>; anyPool: ModelPool; anyPoolBuilt: boolean; routableCount: number };
  const all = set.all;
  const sorted = [...all].sort((a, b) => (a.name < b.name ? -1 : 1));
  assert.deepEqual(names(all), names(sorted), `${where}: all by name`);
  const routable = all.filter((b) => b.routable(now));
  assert.equal(internals.routableCount, routable.length, `${where}: routable count`);
  const models = new Set(all.flatMap((b) => [...b.modelSet]));
  assert.deepEqual([...internals.pools.keys()].sort(), [...models].sort(), `${where}: one pool per served model`);
  for (const model of [...(internals.anyPoolBuilt ? [undefined] : []), ...models]) {
    const pool = model === undefined ? internals.anyPool : internals.pools.get(model)!;
    const serving = all.filter((b) => model === undefined || b.modelSet.has(model));
    const at = `${where}, model ${model}`;
    if (model !== undefined) assert.deepEqual(names(pool.members), names(serving), `${at}: members`);
    const candidates = serving.filter((b) => b.routable(now));
    assert.deepEqual(names(pool.list), names(candidates), `${at}: routable`);
    assert.equal(pool.typedRoutable, candidates.filter((b) => b.hasCacheType).length, `${at}: typed`);
    const classes = new Set(serving.map((b) => b.cacheType));
    assert.deepEqual(pool.classes.map((c) => c.cacheType).sort(), [...classes].sort(), `${at}: classes`);
    for (const cls of pool.classes) {
      assert.equal(pool.byClass.get(cls.cacheType), cls);
      assert.equal(cls.members, serving.filter((b) => b.cacheType === cls.cacheType).length, `${at}/${cls.cacheType}: members`);
      const inClass = candidates.filter((b) => b.cacheType === cls.cacheType);
      assert.deepEqual(names(cls.list), names(inClass), `${at}/${cls.cacheType}: routable`);
      const positive = inClass.filter((b) => b.weight > 0);
      if (cls.rr) {
        assert.equal(cls.rr.positives, positive.length, `${at}/${cls.cacheType}: round-robin members`);
        assert.equal(cls.rr.total, positive.reduce((s, b) => s + b.weight, 0), `${at}/${cls.cacheType}: round-robin total`);
        const inBuckets = cls.rr.buckets.flatMap((bucket) => bucket.heap.items.map((m) => m.backend.name)).sort();
        assert.deepEqual(inBuckets, names(positive), `${at}/${cls.cacheType}: round-robin buckets`);
      }
      if (cls.ll) assert.deepEqual(cls.ll.heap.items.map((m) => m.backend.name).sort(), names(inClass), `${at}/${cls.cacheType}: least-load heap`);
    }
  }
}

describe('router index: incremental updates equal a rebuild', () => {
  for (const [policy, seed] of [
    ['round-robin', 1],
    ['round-robin', 2],
    ['least-load', 3],
    ['power-of-two', 4],
  ] as const) {
    it(`${policy}, seed ${seed}: every per-model list and class sub-pool after each of 1,500 random changes`, () => {
      const w = new World(seededRandom(seed));
      w.set.setPolicy(createPolicy(policy, { sizeThresholdBytes: THRESHOLD }));
      for (let i = 0; i < 1500; i++) {
        w.step();
        // requests in between (retries included) must leave the index as they found it
        if (i % 3 === 0) {
          const info = w.info();
          w.set.pick(info, w.now, w.exclude(info));
        }
        assertIndexMatchesRebuild(w.set, w.now, `seed ${seed}, step ${i}`);
      }
    });
  }

  it('a policy set after the backends joined sees them all', () => {
    const w = new World(seededRandom(9));
    for (let i = 0; i < 300; i++) w.step();
    w.set.setPolicy(createPolicy('least-load', { sizeThresholdBytes: THRESHOLD }));
    assertIndexMatchesRebuild(w.set, w.now, 'late policy');
  });
});

describe('router index: choices equal the array-based policies', () => {
  for (const seed of [11, 12, 13, 14, 15]) {
    it(`round robin, affinity and size classes, seed ${seed}: same backend for 6,000 requests amid random changes`, () => {
      const w = new World(seededRandom(seed));
      w.set.setPolicy(createPolicy('round-robin', { sizeThresholdBytes: THRESHOLD }));
      const ref = new RefSizeClassFilter(THRESHOLD, new RefSessionAffinity(new RefWeightedRoundRobin()));
      let routed = 0;
      for (let i = 0; i < 6000; i++) {
        if (w.rnd() < 0.3 && w.step()) ref.onBackendsChanged(w.set.all);
        const info = w.info();
        const exclude = w.exclude(info);
        const expected = ref.select(refCandidates(w.set, info.model, w.now, exclude), info);
        const got = w.set.pick(info, w.now, exclude);
        assert.equal(got?.name, expected?.name, `seed ${seed}, request ${i} (${JSON.stringify({ ...info, exclude: exclude && names([...exclude]) })})`);
        assert.equal(got, expected);
        if (got) routed++;
      }
      assert.ok(routed > 3000, `most requests found a backend: ${routed}`);
    });
  }

  it('power of two, seed 21: same samples as on the candidate array', () => {
    const w = new World(seededRandom(21));
    const draws = seededRandom(99);
    const again = seededRandom(99);
    w.set.setPolicy(new PowerOfTwo(draws));
    const ref = new RefPowerOfTwo(again);
    for (let i = 0; i < 3000; i++) {
      if (w.rnd() < 0.3) w.step();
      const info = { ...w.info(), size: 0, sessionKey: undefined };
      const exclude = w.exclude(info);
      assert.equal(w.set.pick(info, w.now, exclude), ref.select(refCandidates(w.set, info.model, w.now, exclude)), `request ${i}`);
    }
  });

  it('least load, seed 31: always a least-loaded candidate, ties spread', () => {
    const w = new World(seededRandom(31));
    w.set.setPolicy(new LeastLoad());
    for (let i = 0; i < 3000; i++) {
      if (w.rnd() < 0.3) w.step();
      const info = { ...w.info(), size: 0, sessionKey: undefined };
      const exclude = w.exclude(info);
      const candidates = refCandidates(w.set, info.model, w.now, exclude);
      const got = w.set.pick(info, w.now, exclude);
      if (candidates.length === 0) {
        assert.equal(got, undefined);
        continue;
      }
      assert.ok(got && candidates.includes(got), `request ${i}: a candidate`);
      assert.equal(load(got), Math.min(...candidates.map(load)), `request ${i}: least loaded`);
    }
    // an idle pool of five: five requests reach five backends
    const idle = new BackendSet(POOL);
    idle.setPolicy(new LeastLoad());
    for (let i = 0; i < 5; i++) idle.upsert({ name: `idle-${i}`, host: '127.0.0.1', port: 9100 + i, url: `http://127.0.0.1:${9100 + i}`, weight: 1, metadata: { type: 'openai-api', models: ['m'] }, isStatic: false });
    const info: RequestInfo = { model: 'm', stream: false, promptCacheKey: undefined, size: 0, sessionKey: undefined, body: undefined };
    assert.equal(new Set(Array.from({ length: 5 }, () => idle.pick(info, Date.now()))).size, 5);
  });
});

describe('router index: membership notices', () => {
  it('onChange hears a burst of changes once, onMembership each join and leave', async () => {
    const set = new BackendSet(POOL);
    const calls: number[] = [];
    const seen: string[] = [];
    set.onChange((all) => calls.push(all.length));
    set.onMembership((b, joined) => seen.push(`${joined ? '+' : '-'}${b.name}`));
    const spec = (name: string): BackendSpec => ({ name, host: '127.0.0.1', port: 9200, url: 'http://127.0.0.1:9200', weight: 1, metadata: { type: 'openai-api', models: ['m'] }, isStatic: false });
    for (let i = 0; i < 100; i++) set.upsert(spec(`n${i}`));
    set.remove('n5');
    assert.deepEqual(calls, []);
    await Promise.resolve();
    assert.deepEqual(calls, [99]);
    assert.equal(seen.length, 101);
    assert.deepEqual(seen.slice(-1), ['-n5']);
    const before = set.all;
    set.remove('n6');
    assert.equal(before.length, 99, 'a list handed out never changes');
    assert.equal(set.all.length, 98);
    await set.closeAll();
  });
});
