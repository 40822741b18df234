/**
 * What the router counts about the traffic it proxies, kept as plain numbers in cells so that the
 * request path pays an array increment per figure; /metrics, the dashboard and `status` read the
 * cells when they are asked.
 */

/**
 * Bucket bounds (seconds) for request duration and time to first token: LLM requests take from a
 * few milliseconds (an embedding, a cached prompt) to minutes (long generations), so the buckets
 * are dense below a second and reach five minutes. 20 bounds, as SMG's latency histograms have.
 */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 20, 45, 90, 300] as const;

/** Bucket bounds (seconds) for the time between stream events: a token every 5-100 ms is normal. */
export const ITL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10] as const;

/** Bucket bounds for output tokens per second of one request (one user's decode speed). */
export const TOKEN_RATE_BUCKETS = [1, 2.5, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000] as const;

/** The `route` label: the OpenAI paths by name, anything else as `other` (bounded cardinality). */
export const ROUTES = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', 'other'] as const;

/** Index of a request path (query excluded by the caller or not: a query makes it `other`) in ROUTES. */
export function routeIndex(url: string): number {
  switch (url) {
    case '/v1/chat/completions':
      return 0;
    case '/v1/completions':
      return 1;
    case '/v1/embeddings':
      return 2;
    default: {
      const q = url.indexOf('?');
      return q === -1 ? 3 : routeIndex(url.slice(0, q));
    }
  }
}

/** The `status_class` label: the class of the status the client got, or `none` if it got none (gone first). */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'none'] as const;
export const NO_STATUS = 5;

export function statusClassIndex(status: number): number {
  const c = Math.floor(status / 100);
  return c >= 1 && c <= 5 ? c - 1 : NO_STATUS;
}

/** A fixed-bucket histogram; `counts[i]` counts observations in (bounds[i-1], bounds[i]], the last one above every bound. */
export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  /** Adds another histogram with the same bounds (cells of one model across backends). */
  add(other: Histogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.sum += other.sum;
    this.count += other.count;
  }
}

/**
 * The `q` quantile of observations whose per-bucket counts are `counts` (Prometheus'
 * histogram_quantile: linear inside the bucket; the top bucket answers its lower bound).
 * undefined when there are none.
 */
export function bucketQuantile(bounds: readonly number[], counts: ArrayLike<number>, q: number): number | undefined {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (seen + c >= rank && c > 0) {
      if (i === bounds.length) return bounds[bounds.length - 1];
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      return lo + (bounds[i]! - lo) * ((rank - seen) / c);
    }
    seen += c;
  }
  return bounds[bounds.length - 1];
}

/** The traffic of one model on one backend (backend '' for requests the router answered itself). */
export class TrafficCell {
  /** Requests by route and status class: `requests[route * STATUS_CLASSES.length + class]`. */
  readonly requests = new Float64Array(ROUTES.length * STATUS_CLASSES.length);
  readonly duration = new Histogram(LATENCY_BUCKETS);
  /** Time to first token of streamed requests (the first event). */
  readonly ttft = new Histogram(LATENCY_BUCKETS);
  /** Time to the first byte of whole (non-streamed) answers: nearly their duration, kept apart so it does not blur the streams' TTFT. */
  readonly ttftWhole = new Histogram(LATENCY_BUCKETS);
  readonly itl = new Histogram(ITL_BUCKETS);
  readonly tokenRate = new Histogram(TOKEN_RATE_BUCKETS);
  /** Output tokens reported by `usage.completion_tokens`. */
  outputTokens = 0;

  constructor(
    readonly backend: string,
    readonly model: string,
  ) {}

  countRequest(route: number, status: number): void {
    this.requests[route * STATUS_CLASSES.length + statusClassIndex(status)]!++;
  }

  /** Requests of every route with this status class index. */
  requestsOfClass(cls: number): number {
    let n = 0;
    for (let r = 0; r < ROUTES.length; r++) n += this.requests[r * STATUS_CLASSES.length + cls]!;
    return n;
  }

  get totalRequests(): number {
    let n = 0;
    for (let i = 0; i < this.requests.length; i++) n += this.requests[i]!;
    return n;
  }
}

/** The `model` label of a request whose model was missing, or not one a bounded label set admits. */
export const NO_MODEL = '';
export const OTHER_MODEL = 'other';
/** Distinct model labels per backend before further ones count as `other` (a backend that takes any name). */
const MODELS_PER_BACKEND = 64;
/** How long the cells of a backend the router no longer has stay in /metrics. */
const FORGET_AFTER_MS = 10 * 60_000;

/** The cells of one backend, by model; held by the backend itself so the request path finds them without a lookup by name. */
export class BackendTraffic {
  readonly cells = new Map<string, TrafficCell>();
  /** When the router stopped having this backend (undefined while it has it). */
  goneSince: number | undefined;
  retries = 0;
  ejections = 0;
  /** Failed attempts by kind (see FAILURE_KINDS). */
  readonly failures = new Float64Array(FAILURE_KINDS.length);
  /** Health checks by result (see CHECK_RESULTS). */
  readonly checks = new Float64Array(CHECK_RESULTS.length);

  constructor(readonly backend: string) {}

  cell(model: string): TrafficCell {
    let c = this.cells.get(model);
    if (c === undefined) {
      const label = this.cells.size < MODELS_PER_BACKEND ? model : OTHER_MODEL;
      c = this.cells.get(label);
      if (c === undefined) {
        c = new TrafficCell(this.backend, label);
        this.cells.set(label, c);
      }
      // a model past the cap is remembered as `other` so it is not looked up twice
      if (label !== model && this.cells.size < MODELS_PER_BACKEND * 4) this.cells.set(model, c);
    }
    return c;
  }

  /** Distinct cells (a model past the cap maps to the shared `other` cell). */
  *distinctCells(): Iterable<TrafficCell> {
    for (const [model, c] of this.cells) if (c.model === model) yield c;
  }
}

/** Why an attempt failed, as the `kind` label of infini_router_upstream_failures_total. */
export const FAILURE_KINDS = ['connect', 'timeout', 'down', 'malformed', 'reset', 'status_502', 'status_503', 'address_refused'] as const;
export type FailureLabel = (typeof FAILURE_KINDS)[number];

/** A health check's result, as the `result` label of infini_router_health_checks_total. */
export const CHECK_RESULTS = ['ok', 'not_ready', 'unanswered', 'inconclusive'] as const;
export type CheckResult = (typeof CHECK_RESULTS)[number];

/**
 * Every backend's traffic, by backend name, kept across a backend's removal and return (a restarted
 * engine re-registers under its name, and its counters go on), forgotten 10 minutes after it left.
 */
export class TrafficStats {
  readonly backends = new Map<string, BackendTraffic>();
  /** Requests the router answered without a backend (unknown model, none routable), by model. */
  readonly unrouted = new BackendTraffic('');

  forBackend(name: string): BackendTraffic {
    let t = this.backends.get(name);
    if (t === undefined) {
      t = new BackendTraffic(name);
      this.backends.set(name, t);
    }
    t.goneSince = undefined;
    return t;
  }

  /** The backend left the router's set: its series stay for a while, then go. */
  backendGone(name: string, now: number): void {
    const t = this.backends.get(name);
    if (t !== undefined) t.goneSince = now;
  }

  /** Drops backends gone for longer than FORGET_AFTER_MS; called from a timer, not per request. */
  forgetGone(now: number): void {
    for (const [name, t] of this.backends) if (t.goneSince !== undefined && now - t.goneSince > FORGET_AFTER_MS) this.backends.delete(name);
  }

  /** Every backend's traffic and the router's own answers. */
  *all(): Iterable<BackendTraffic> {
    yield this.unrouted;
    yield* this.backends.values();
  }
}
