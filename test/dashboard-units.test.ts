import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { backendRows, mergeParts, snapshotJson, trafficJson, type DashboardPart } from '../src/router/dashboard-snapshot.js';
import type { ClusterView } from '../src/router/cluster-watch.js';
import { rowQuery } from '../src/router/dashboard.js';
import { RecentErrors } from '../src/router/recent-errors.js';
import { HISTORY_MODELS, HISTORY_SLOTS, SAMPLE_MS, TrafficSampler, WINDOW_STEP_MS } from '../src/router/traffic-sampler.js';
import { bucketQuantile, LATENCY_BUCKETS, OTHER_MODEL, TrafficStats } from '../src/router/traffic-stats.js';
import { mapLimit, sitterView, uniqueTargets } from '../src/babysitter/cluster-view.js';

/** A time just after a slot boundary that is also a window step boundary, as the sampler's timer fires. */
const T0 = Math.ceil(1_800_000_000_000 / WINDOW_STEP_MS) * WINDOW_STEP_MS + 40;
const CHAT = 0;

/** `n` requests of `status` for `model` on `backend`, each with this TTFT (s) and tokens. */
function traffic(stats: TrafficStats, backend: string, model: string, n: number, status = 200, ttft = 0.1, tokens = 10): void {
  const cell = (backend === '' ? stats.unrouted : stats.forBackend(backend)).cell(model);
  for (let i = 0; i < n; i++) {
    cell.countRequest(CHAT, status);
    cell.ttft.observe(ttft);
    cell.outputTokens += tokens;
  }
}

function part(sampler: TrafficSampler, now: number, backends: DashboardPart['backends'] = [], errors: DashboardPart['errors'] = []): DashboardPart {
  return { worker: null, traffic: sampler.part(now), backends, errors };
}

const backendPart = (name: string, over: Partial<DashboardPart['backends'][number]> = {}): DashboardPart['backends'][number] => ({
  name,
  url: `http://h/${name}`,
  models: ['m'],
  sitter: null,
  sitterUrl: null,
  inFlight: 0,
  health: 'ok',
  ...over,
});

describe('dashboard aggregation', () => {
  it('history: each sample adds what changed since the last one to its time slot; rates, 5xx, 4xx and TTFT quantiles per slot', () => {
    const stats = new TrafficStats();
    const s = new TrafficSampler(stats, SAMPLE_MS, T0);
    traffic(stats, 'b1', 'm', 10, 200, 0.1);
    s.sample(T0);
    traffic(stats, 'b1', 'm', 4, 503, 0.5);
    traffic(stats, 'b2', 'm', 2, 404, 2);
    traffic(stats, '', 'nope', 3, 404);
    s.sample(T0 + SAMPLE_MS);
    s.sample(T0 + 2 * SAMPLE_MS); // nothing new: an empty slot
    const snap = snapshotJson(mergeParts([part(s, T0 + 2 * SAMPLE_MS + 10)]), undefined, null, HISTORY_SLOTS);
    const h = snap.history;
    const slot0 = Math.round(T0 / SAMPLE_MS) - 1;
    assert.deepEqual(h.t, [0, 1, 2].map((i) => ((slot0 + i + 1) * SAMPLE_MS) / 1000));
    assert.deepEqual(h.models.map((m) => [m.model, m.requests, m.errors]), [
      ['m', 16, 4],
      ['nope', 3, 0],
    ]);
    const m = h.models[0]!;
    assert.deepEqual(m.req_s, [5, 3, 0]);
    assert.deepEqual(m.err_s, [0, 2, 0]);
    assert.deepEqual(m.client_err_s, [0, 1, 0]);
    assert.deepEqual(m.tokens_s, [50, 30, 0]);
    assert.equal(m.ttft_p50_ms[0], Math.round(bucketQuantile(LATENCY_BUCKETS, oneBucket(0.1, 10), 0.5)! * 10_000) / 10);
    assert.equal(m.ttft_p50_ms[2], null, 'no requests, no quantile: a gap in the chart');
    // the second slot's TTFT: 4 at 0.5 s and 2 at 2 s, from the bucket deltas of both backends
    const mixed = oneBucket(0.5, 4);
    mixed[LATENCY_BUCKETS.indexOf(2)] = 2;
    assert.equal(m.ttft_p99_ms[1], Math.round(bucketQuantile(LATENCY_BUCKETS, mixed, 0.99)! * 10_000) / 10);
    assert.ok(m.ttft_p99_ms[1]! > 1500 && m.ttft_p99_ms[1]! <= 2000);
  });

  it('windows: a backend\'s last minute, its rates and error rate; older traffic leaves it', () => {
    const stats = new TrafficStats();
    const s = new TrafficSampler(stats, SAMPLE_MS, T0);
    s.sample(T0);
    traffic(stats, 'b1', 'm', 30, 200, 0.05, 20);
    traffic(stats, 'b1', 'm', 10, 500, 0.05, 0);
    let now = T0 + 20_000;
    let w = trafficJson(mergeParts([part(s, now, [backendPart('b1')])]));
    assert.equal(w.window_s, 20);
    assert.deepEqual(w.backends, [{ backend: 'b1', req_s: 2, error_rate: 0.25, ttft_p50_ms: w.backends[0]!.ttft_p50_ms, ttft_p99_ms: w.backends[0]!.ttft_p99_ms, tokens_s: 30 }]);
    assert.ok(w.backends[0]!.ttft_p50_ms! > 25 && w.backends[0]!.ttft_p50_ms! <= 50);
    assert.equal(w.total.req_s, 2);
    // sampled every 2 s for two minutes with no more traffic: the window slides past it
    for (now = T0 + SAMPLE_MS; now <= T0 + 120_000; now += SAMPLE_MS) s.sample(now);
    w = trafficJson(mergeParts([part(s, now, [backendPart('b1')])]));
    assert.ok(w.window_s >= 60 && w.window_s <= 77, `window ${w.window_s} s`);
    assert.deepEqual(w.backends[0], { backend: 'b1', req_s: 0, error_rate: null, ttft_p50_ms: null, ttft_p99_ms: null, tokens_s: 0 });
    // new traffic shows at once, before the next sample
    traffic(stats, 'b1', 'm', 6);
    w = trafficJson(mergeParts([part(s, now, [backendPart('b1')])]));
    assert.ok(w.backends[0]!.req_s > 0);

    // traffic before a fresh router's first sample is in its first minute (the start is the baseline)
    const fresh = new TrafficStats();
    const f = new TrafficSampler(fresh, SAMPLE_MS, T0);
    traffic(fresh, 'b1', 'm', 3);
    f.sample(T0 + 1500);
    f.sample(T0 + WINDOW_STEP_MS + 40);
    assert.equal(trafficJson(mergeParts([part(f, T0 + WINDOW_STEP_MS + 1000, [backendPart('b1')])])).backends[0]!.req_s, Math.round((3 / (WINDOW_STEP_MS + 1000)) * 1e6) / 1000);
  });

  it('workers: parts add up slot by slot and backend by backend; in-flight sums, a worker that cannot route wins, errors newest first', () => {
    const a = new TrafficStats();
    const b = new TrafficStats();
    const sa = new TrafficSampler(a, SAMPLE_MS, T0);
    const sb = new TrafficSampler(b, SAMPLE_MS, T0 + 15);
    // the two workers' timers fire at slightly different times within the same slots
    sa.sample(T0);
    sb.sample(T0 + 15);
    traffic(a, 'b1', 'm', 4, 200, 0.02);
    traffic(b, 'b1', 'm', 6, 200, 0.8);
    sa.sample(T0 + SAMPLE_MS);
    sb.sample(T0 + SAMPLE_MS + 30);
    traffic(b, 'b1', 'm', 2);
    sb.sample(T0 + 2 * SAMPLE_MS + 5);
    const errs = (t: number, id: string) => ({ time: t, requestId: id, model: 'm', backend: 'b1', status: 502, reason: 'upstream_error' });
    const merged = mergeParts([
      { ...part(sa, T0 + 2 * SAMPLE_MS + 100, [backendPart('b1', { inFlight: 2 })], [errs(3, 'a3'), errs(1, 'a1')]), queued: [['m', 3], ['', 1]] },
      { ...part(sb, T0 + 2 * SAMPLE_MS + 100, [backendPart('b1', { inFlight: 5, health: 'ejected' })], [errs(2, 'b2')]), queued: [['m', 2]] },
    ]);
    const snap = snapshotJson(merged, undefined, null, HISTORY_SLOTS);
    assert.equal(snap.workers, 2);
    const m = snap.history.models[0]!;
    assert.deepEqual(m.req_s, [0, 5, 1], 'from the first sample on');
    assert.equal(m.requests, 12);
    // one slot's quantiles over both workers' buckets: 4 fast, 6 slow
    const both = oneBucket(0.02, 4);
    both[LATENCY_BUCKETS.indexOf(1)] = 6;
    assert.equal(m.ttft_p50_ms[1], Math.round(bucketQuantile(LATENCY_BUCKETS, both, 0.5)! * 10_000) / 10);
    const row = snap.backends[0]!;
    assert.equal(row.in_flight, 7);
    assert.equal(row.health, 'ejected');
    assert.equal(row.up, false);
    // each worker's requests over its own window (since its first sample), added
    const perWorker = (4 * 1000) / (2 * SAMPLE_MS + 100) + (8 * 1000) / (2 * SAMPLE_MS + 85);
    assert.equal(row.req_s, Math.round(perWorker * 1000) / 1000);
    assert.deepEqual(snap.recent_errors.map((e) => e.request_id), ['a3', 'b2', 'a1']);
    assert.deepEqual(snap.totals.in_flight, 7);
    // waiting requests, added over the workers (a part from an older worker has none)
    assert.deepEqual([snap.totals.queued, snap.queued], [6, { m: 5, '': 1 }]);
    assert.deepEqual([trafficJson(merged).in_flight, trafficJson(merged).queued], [7, 6]);
    assert.equal(snapshotJson(mergeParts([part(sa, T0)]), undefined, null, HISTORY_SLOTS).totals.queued, 0);
  });

  it('memory stays bounded: models past HISTORY_MODELS share `other`; a model quiet for 10 minutes is dropped', () => {
    const stats = new TrafficStats();
    const s = new TrafficSampler(stats, SAMPLE_MS, T0);
    for (let i = 0; i < HISTORY_MODELS + 8; i++) traffic(stats, `b${i % 3}`, `model-${String(i).padStart(2, '0')}`, 1);
    s.sample(T0);
    let models = snapshotJson(mergeParts([part(s, T0)]), undefined, null, HISTORY_SLOTS).history.models;
    assert.equal(models.length, HISTORY_MODELS + 1);
    assert.equal(models.find((m) => m.model === OTHER_MODEL)?.requests, 8);
    let now = T0;
    for (let i = 0; i < HISTORY_SLOTS + 2; i++) s.sample((now += SAMPLE_MS));
    traffic(stats, 'b0', 'late', 1);
    s.sample((now += SAMPLE_MS));
    models = snapshotJson(mergeParts([part(s, now)]), undefined, null, HISTORY_SLOTS).history.models;
    assert.deepEqual(models.map((m) => m.model), ['late']);
  });

  it('rows: backends by their babysitter\'s name, with its state; a babysitter whose backend left shows down', () => {
    const stats = new TrafficStats();
    const s = new TrafficSampler(stats, SAMPLE_MS, T0);
    traffic(stats, 'gone-server', 'm', 3);
    const merged = mergeParts([
      part(s, T0, [backendPart('a-server', { sitter: 'a', sitterUrl: 'http://h:2' }), backendPart('plain', { health: 'check failing' }), backendPart('c-server', { sitter: 'c', sitterUrl: 'http://h:6' })]),
    ]);
    const cluster: ClusterView = {
      fetchedAt: T0 - 1000,
      registryUp: true,
      sitters: new Map([
        ['a', sitterView({ name: 'a', url: 'http://h:2/' }, { state: 'ready', restart_count: 2, pid: 42, uptime: 9, models: ['m'] })],
        ['gone', sitterView({ name: 'gone', url: 'http://h:4' }, undefined)],
        ['c', sitterView({ name: 'c', url: 'http://h:6' }, { state: 'backoff', restart_count: 1, last_down_reason: 'crashed', last_exit_code: 1, next_start_in_s: 3 })],
      ]),
    };
    const rows = backendRows(merged, cluster);
    assert.deepEqual(rows.map((r) => [r.name, r.backend, r.state, r.health, r.up, r.restarts]), [
      ['a', 'a-server', 'ready', 'ok', true, 2],
      ['c', 'c-server', 'backoff (crashed: exit 1, restart 2 in 3 s)', 'ok', false, 1],
      ['gone', null, 'down', 'not in router', false, null],
      ['plain', 'plain', 'unhealthy', 'check failing', false, null],
    ]);
    assert.equal(rows[0]!.pid, 42);
    assert.equal(rows[0]!.uptime_s, 9, 'a babysitter without backend_uptime: its own uptime');
    assert.equal(sitterView({ name: 'n', url: 'http://h' }, { state: 'ready', uptime: 90, backend_uptime: 4 }).uptime_s, 4, 'the engine\'s, beside its pid');
    assert.equal(sitterView({ name: 'n', url: 'http://h' }, { state: 'backoff', uptime: 90, backend_uptime: null }).uptime_s, null, 'no engine running');
    assert.equal(rows[0]!.babysitter_url, 'http://h:2');
    assert.ok(rows[2]!.req_s > 0, 'the traffic of its backend before it left');
    // before the first round of /info: the router's own view
    assert.deepEqual(backendRows(merged, undefined).map((r) => r.state), ['unknown', 'unknown', 'unhealthy']);
    const snap = snapshotJson(merged, cluster, 'http://reg', HISTORY_SLOTS);
    assert.equal(snap.cluster_age_s, 1);
    assert.deepEqual([snap.totals.backends, snap.totals.up, snap.matched], [4, 1, 4]);
    // the page asks for a few rows, filtered: the totals stay the whole cluster's
    const some = snapshotJson(merged, cluster, 'http://reg', HISTORY_SLOTS, rowQuery('/dashboard/api/snapshot?filter=DOWN&limit=1'));
    assert.deepEqual([some.backends.map((r) => r.name), some.matched, some.totals.backends], [['gone'], 1, 4]);
    assert.deepEqual(snapshotJson(merged, cluster, null, HISTORY_SLOTS, rowQuery('/x?limit=2')).backends.map((r) => r.name), ['a', 'c']);
    assert.deepEqual(rowQuery('/x'), { filter: '', limit: 500 });
    assert.deepEqual(rowQuery('/x?limit=-3&filter=' + 'y'.repeat(300)), { filter: 'y'.repeat(200), limit: 500 });
  });

  it('recent errors: a bounded ring, newest first, long fields clipped; fed by the forwarder\'s record', () => {
    const r = new RecentErrors(3);
    for (let i = 1; i <= 5; i++) r.add({ time: i, requestId: `r${i}`, model: 'm', backend: 'b', status: 502, reason: 'upstream_error' });
    assert.deepEqual(r.list().map((e) => e.requestId), ['r5', 'r4', 'r3']);
    assert.equal(r.total, 5);
    r.onFailedRequest({ requestId: 'x'.repeat(1000), requestNumber: 0, model: undefined, backend: undefined, status: 0, attempts: 1, bytesIn: 0, bytesOut: 0, ttftMs: undefined, durationMs: 5, endedAt: 0, outputTokens: undefined, stream: false, client: '127.0.0.1', end: 'client_gone' });
    const e = r.list()[0]!;
    assert.deepEqual([e.requestId.length, e.model, e.backend, e.status, e.reason], [200, '', '', 0, 'client_gone']);
    assert.deepEqual(new RecentErrors().list(), []);
  });

  it('cluster view helpers: bounded concurrency in order; first list wins a name', async () => {
    let running = 0;
    let peak = 0;
    const out = await mapLimit([5, 1, 4, 2, 3, 0], 2, async (x) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setImmediate(r));
      running--;
      return x * 2;
    });
    assert.deepEqual(out, [10, 2, 8, 4, 6, 0]);
    assert.equal(peak, 2);
    assert.deepEqual(await mapLimit([], 4, async (x) => x), []);
    assert.deepEqual(uniqueTargets([{ name: 'a', url: 'http://r/' }], [{ name: 'a', url: 'http://x' }, { name: 'b', url: 'http://b' }]), [
      { name: 'a', url: 'http://r' },
      { name: 'b', url: 'http://b' },
    ]);
    assert.equal(sitterView({ name: 'z', url: 'u' }, { nonsense: true }).state, 'down');
  });
});

/** Bucket counts with `n` observations of `v`. */
function oneBucket(v: number, n: number): number[] {
  const counts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  let i = 0;
  while (i < LATENCY_BUCKETS.length && v > LATENCY_BUCKETS[i]!) i++;
  counts[i] = n;
  return counts;
}
