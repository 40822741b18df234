/**
 * The dashboard's JSON: each router process (one, or every worker of --workers N) contributes a
 * DashboardPart; mergeParts adds them up (history slot by slot, windows backend by backend) and the
 * renderers turn the sums into rates and quantiles. Pure functions, tested on hand-made parts.
 */
import type { ClusterView } from './cluster-watch.js';
import type { RecentError } from './recent-errors.js';
import { V_4XX, V_ERR, V_LEN, V_REQ, V_TOK, V_TTFT, type TrafficPart } from './traffic-sampler.js';
import { bucketQuantile, LATENCY_BUCKETS } from './traffic-stats.js';

/** A backend as one router process sees it. */
export interface BackendPart {
  /** The router's name for it (its registry record's). */
  name: string;
  url: string;
  models: string[];
  /** The babysitter running it (its record's parent_service) and that babysitter's URL. */
  sitter: string | null;
  sitterUrl: string | null;
  inFlight: number;
  /** `ok` (routable), or why not: `unlisted` (registry), `check failing`, `ejected`. */
  health: string;
}

export interface DashboardPart {
  worker: number | null;
  traffic: TrafficPart;
  backends: BackendPart[];
  errors: RecentError[];
  /** Requests waiting for a backend with room now, by model ('' for none named); only models with waiters. */
  queued?: Array<[string, number]>;
}

/** A backend's (or the router's) last minute, added up over workers. */
export interface WindowSum {
  counts: Float64Array;
  /** Requests and output tokens per second: each worker's over its own window, added. */
  reqS: number;
  tokS: number;
  ms: number;
}

export interface Merged {
  time: number;
  sampleMs: number;
  workers: number;
  /** The longest of the workers' windows (ms). */
  windowMs: number;
  firstSlot: number | null;
  lastSlot: number | null;
  history: Map<string, Map<number, Float64Array>>;
  windows: Map<string, WindowSum>;
  backends: Map<string, BackendPart>;
  errors: RecentError[];
  /** Waiting requests by model, added over workers. */
  queued: Map<string, number>;
}

/** Requests answered with a 5xx, per request; per second the same as requests per second. */
export interface Figures {
  req_s: number;
  error_rate: number | null;
  ttft_p50_ms: number | null;
  ttft_p99_ms: number | null;
  tokens_s: number;
}

const RECENT = 50;
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function addPacked(into: Float64Array, packed: readonly number[], from: number): void {
  for (let i = 0; i + from < packed.length && i < V_LEN; i++) into[i]! += Number(packed[i + from]) || 0;
}

export function mergeParts(parts: readonly DashboardPart[]): Merged {
  const m: Merged = { time: 0, sampleMs: 0, workers: parts.length, windowMs: 0, firstSlot: null, lastSlot: null, history: new Map(), windows: new Map(), backends: new Map(), errors: [], queued: new Map() };
  for (const p of parts) {
    const t = p.traffic;
    m.time = Math.max(m.time, t.time);
    m.sampleMs = Math.max(m.sampleMs, t.sampleMs);
    m.windowMs = Math.max(m.windowMs, Number(t.windowMs) || 0);
    if (t.firstSlot !== null) m.firstSlot = m.firstSlot === null ? t.firstSlot : Math.min(m.firstSlot, t.firstSlot);
    if (t.lastSlot !== null) m.lastSlot = m.lastSlot === null ? t.lastSlot : Math.max(m.lastSlot, t.lastSlot);
    for (const { model, slots } of t.models) {
      let h = m.history.get(model);
      if (h === undefined) m.history.set(model, (h = new Map()));
      for (const s of slots) {
        const slot = s[0]!;
        let v = h.get(slot);
        if (v === undefined) h.set(slot, (v = new Float64Array(V_LEN)));
        addPacked(v, s, 1);
      }
    }
    for (const w of t.windows) {
      let sum = m.windows.get(w.backend);
      if (sum === undefined) m.windows.set(w.backend, (sum = { counts: new Float64Array(V_LEN), reqS: 0, tokS: 0, ms: 0 }));
      addPacked(sum.counts, w.v, 0);
      // a window shorter than a second (a router that just started) counts as one second
      const perSecond = 1000 / Math.max(w.ms, 1000);
      sum.reqS += (Number(w.v[V_REQ]) || 0) * perSecond;
      sum.tokS += (Number(w.v[V_TOK]) || 0) * perSecond;
      sum.ms = Math.max(sum.ms, w.ms);
    }
    for (const b of p.backends) {
      const seen = m.backends.get(b.name);
      if (seen === undefined) m.backends.set(b.name, { ...b });
      else {
        seen.inFlight += b.inFlight;
        // one worker that cannot route to it is worth showing
        if (seen.health === 'ok') seen.health = b.health;
      }
    }
    m.errors.push(...p.errors);
    for (const [model, n] of p.queued ?? []) if (n > 0) m.queued.set(model, (m.queued.get(model) ?? 0) + n);
  }
  m.errors = m.errors.sort((a, b) => b.time - a.time).slice(0, RECENT);
  return m;
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
const ms = (seconds: number | undefined) => (seconds === undefined ? null : round(seconds * 1000, 1));

function quantileMs(counts: Float64Array, q: number): number | null {
  return ms(bucketQuantile(LATENCY_BUCKETS, counts.subarray(V_TTFT), q));
}

export function figuresOf(w: WindowSum | undefined): Figures {
  if (w === undefined) return { req_s: 0, error_rate: null, ttft_p50_ms: null, ttft_p99_ms: null, tokens_s: 0 };
  const req = w.counts[V_REQ]!;
  return {
    req_s: round(w.reqS, 3),
    error_rate: req > 0 ? round(w.counts[V_ERR]! / req, 4) : null,
    ttft_p50_ms: quantileMs(w.counts, 0.5),
    ttft_p99_ms: quantileMs(w.counts, 0.99),
    tokens_s: round(w.tokS, 1),
  };
}

/** Every window added: the whole router. */
export function totalWindow(m: Merged): WindowSum {
  const t: WindowSum = { counts: new Float64Array(V_LEN), reqS: 0, tokS: 0, ms: 0 };
  for (const w of m.windows.values()) {
    for (let i = 0; i < V_LEN; i++) t.counts[i]! += w.counts[i]!;
    t.reqS += w.reqS;
    t.tokS += w.tokS;
    t.ms = Math.max(t.ms, w.ms);
  }
  return t;
}

export interface ModelSeries {
  model: string;
  /** Requests and 5xx answers over the whole history. */
  requests: number;
  errors: number;
  req_s: number[];
  err_s: number[];
  /** Answers with a 4xx (the clients' errors: unknown model, bad request, rate limited). */
  client_err_s: number[];
  tokens_s: number[];
  ttft_p50_ms: Array<number | null>;
  ttft_p99_ms: Array<number | null>;
}

export interface HistoryJson {
  sample_s: number;
  /** The end of each slot, seconds since the epoch. */
  t: number[];
  /** Busiest first. */
  models: ModelSeries[];
}

export function historyJson(m: Merged, slots: number): HistoryJson {
  const sample = m.sampleMs / 1000;
  const out: HistoryJson = { sample_s: sample, t: [], models: [] };
  if (m.firstSlot === null || m.lastSlot === null) return out;
  const from = Math.max(m.firstSlot, m.lastSlot - slots + 1);
  for (let s = from; s <= m.lastSlot; s++) out.t.push(((s + 1) * m.sampleMs) / 1000);
  for (const [model, h] of m.history) {
    const series: ModelSeries = { model, requests: 0, errors: 0, req_s: [], err_s: [], client_err_s: [], tokens_s: [], ttft_p50_ms: [], ttft_p99_ms: [] };
    for (let s = from; s <= m.lastSlot; s++) {
      const v = h.get(s);
      series.requests += v?.[V_REQ] ?? 0;
      series.errors += v?.[V_ERR] ?? 0;
      series.req_s.push(v ? round(v[V_REQ]! / sample, 3) : 0);
      series.err_s.push(v ? round(v[V_ERR]! / sample, 3) : 0);
      series.client_err_s.push(v ? round(v[V_4XX]! / sample, 3) : 0);
      series.tokens_s.push(v ? round(v[V_TOK]! / sample, 1) : 0);
      series.ttft_p50_ms.push(v ? quantileMs(v, 0.5) : null);
      series.ttft_p99_ms.push(v ? quantileMs(v, 0.99) : null);
    }
    if (series.requests > 0 || series.ttft_p50_ms.some((x) => x !== null)) out.models.push(series);
  }
  out.models.sort((a, b) => b.requests - a.requests || byText(a.model, b.model));
  return out;
}

/** One row of the dashboard's table: a backend by the name its babysitter (or its record) gives it. */
export interface BackendRow extends Figures {
  name: string;
  /** The router's name for it; null for a babysitter whose backend the router does not have (down). */
  backend: string | null;
  url: string | null;
  babysitter_url: string | null;
  /** The babysitter's state (`ready`, `backoff (...)`, `down` when it does not answer), or for a backend without one, the router's view. */
  state: string;
  /** The router's view: `ok`, `unlisted`, `check failing`, `ejected`, `not in router`. */
  health: string;
  /** Ready and routable. */
  up: boolean;
  models: string[];
  in_flight: number | null;
  restarts: number | null;
  pid: number | null;
  uptime_s: number | null;
}

/** A row before its figures: what filtering and sorting need, and the name its traffic is kept under. */
type RowHead = Omit<BackendRow, keyof Figures> & { traffic: string };

const withFigures = (m: Merged, { traffic, ...row }: RowHead): BackendRow => ({ ...row, ...figuresOf(m.windows.get(traffic)) });

export function backendRows(m: Merged, cluster: ClusterView | undefined): BackendRow[] {
  return rowHeads(m, cluster).map((h) => withFigures(m, h));
}

/** Every row, by name; figures are added only to the rows a snapshot carries (10,000 rows of them are garbage). */
function rowHeads(m: Merged, cluster: ClusterView | undefined): RowHead[] {
  const rows: RowHead[] = [];
  const shown = new Set<string>();
  for (const b of m.backends.values()) {
    const sv = b.sitter !== null ? cluster?.sitters.get(b.sitter) : undefined;
    if (b.sitter !== null) shown.add(b.sitter);
    const state = sv !== undefined ? sv.state : b.sitter !== null ? 'unknown' : b.health === 'ok' ? 'ready' : 'unhealthy';
    rows.push({
      name: b.sitter ?? b.name,
      backend: b.name,
      url: b.url,
      babysitter_url: sv?.url ?? b.sitterUrl,
      state,
      health: b.health,
      up: b.health === 'ok' && (sv === undefined || sv.state === 'ready'),
      models: b.models,
      in_flight: b.inFlight,
      restarts: sv?.restarts ?? null,
      pid: sv?.pid ?? null,
      uptime_s: sv?.uptime_s ?? null,
      traffic: b.name,
    });
  }
  // babysitters whose backend the router does not have: down, starting, or not registered yet
  for (const sv of cluster?.sitters.values() ?? []) {
    if (shown.has(sv.name)) continue;
    rows.push({
      name: sv.name,
      backend: null,
      url: null,
      babysitter_url: sv.url,
      state: sv.state,
      health: 'not in router',
      up: false,
      models: sv.models,
      in_flight: null,
      restarts: sv.restarts,
      pid: sv.pid,
      uptime_s: sv.uptime_s,
      traffic: `${sv.name}-server`,
    });
  }
  // code-point order: localeCompare costs a second over 10,000 rows
  return rows.sort((a, b) => byText(a.name, b.name) || byText(a.backend ?? '', b.backend ?? ''));
}

/** Which rows a snapshot carries: those whose name, state, health or a model contains `filter` (any case), the first `limit` by name. */
export interface RowQuery {
  filter: string;
  limit: number;
}

export function selectRows<R extends RowHead | BackendRow>(rows: readonly R[], q: RowQuery): R[] {
  const f = q.filter.toLowerCase();
  const match = (r: R) => r.name.toLowerCase().includes(f) || r.state.toLowerCase().includes(f) || r.health.toLowerCase().includes(f) || r.models.some((m) => m.toLowerCase().includes(f));
  const out: R[] = [];
  for (const r of rows) {
    if (out.length >= q.limit) break;
    if (f === '' || match(r)) out.push(r);
  }
  return out;
}

export interface Snapshot {
  time: number;
  workers: number;
  /** Length of the backends' "last minute" (s). */
  window_s: number;
  registry: { url: string | null; up: boolean | null };
  /** Age of the babysitters' /info answers (s); null before the first round. */
  cluster_age_s: number | null;
  totals: Figures & { in_flight: number; queued: number; backends: number; up: number };
  /** Requests waiting for a backend with room now, by model ('' for requests naming none). */
  queued: Record<string, number>;
  /** Rows matching the query's filter (`backends` holds the first `limit` of them). */
  matched: number;
  /** Requests the router answered itself (no such model, nothing routable). */
  unrouted: Figures;
  backends: BackendRow[];
  history: HistoryJson;
  recent_errors: Array<{ time: number; request_id: string; model: string; backend: string; status: number; reason: string }>;
}

export function snapshotJson(m: Merged, cluster: ClusterView | undefined, registryUrl: string | null, historySlots: number, query: RowQuery = { filter: '', limit: Infinity }): Snapshot {
  const rows = rowHeads(m, cluster);
  const shown = selectRows(rows, query).map((h) => withFigures(m, h));
  const matched = query.filter === '' ? rows.length : selectRows(rows, { filter: query.filter, limit: Infinity }).length;
  return {
    time: m.time,
    workers: m.workers,
    window_s: Math.round(m.windowMs / 1000),
    registry: { url: registryUrl, up: cluster?.registryUp ?? null },
    cluster_age_s: cluster ? round((m.time - cluster.fetchedAt) / 1000, 1) : null,
    totals: { ...figuresOf(totalWindow(m)), in_flight: inFlightOf(m), queued: queuedOf(m), backends: rows.length, up: rows.filter((r) => r.up).length },
    queued: Object.fromEntries(m.queued),
    matched,
    unrouted: figuresOf(m.windows.get('')),
    backends: shown,
    history: historyJson(m, historySlots),
    recent_errors: m.errors.map((e) => ({ time: e.time, request_id: e.requestId, model: e.model, backend: e.backend, status: e.status, reason: e.reason })),
  };
}

function inFlightOf(m: Merged): number {
  let n = 0;
  for (const b of m.backends.values()) n += b.inFlight;
  return n;
}

function queuedOf(m: Merged): number {
  let n = 0;
  for (const q of m.queued.values()) n += q;
  return n;
}

/**
 * What `infini-svc status` reads: the last minute per backend (by the router's name) and in total,
 * and the requests in flight and waiting now over every worker (a worker's /stats has only its own).
 */
export function trafficJson(m: Merged): { time: number; window_s: number; in_flight: number; queued: number; total: Figures; backends: Array<Figures & { backend: string }> } {
  const backends: Array<Figures & { backend: string }> = [];
  // also backends the router no longer has but whose last minute still shows (a babysitter's backend that went down)
  for (const name of new Set([...m.backends.keys(), ...m.windows.keys()])) if (name !== '') backends.push({ backend: name, ...figuresOf(m.windows.get(name)) });
  const total = totalWindow(m);
  return { time: m.time, window_s: Math.round(m.windowMs / 1000), in_flight: inFlightOf(m), queued: queuedOf(m), total: figuresOf(total), backends };
}
