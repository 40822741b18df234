/**
 * Per-key limits: requests per minute, tokens per minute, requests in flight.
 *
 * Each per-minute limit is a token bucket holding up to `limit` units and refilled continuously at
 * limit/60 per second: a key may burst up to its whole minute's allowance, then gets one unit back
 * every 60/limit seconds. Two numbers per limit per key (level and time), whatever the traffic, so
 * memory is bounded by the number of keys; the refill is exact at any clock resolution (no window
 * edges where twice the limit passes, as fixed windows allow); and it yields OpenAI's headers
 * directly: remaining = the level, reset = the time until the bucket is full again. OpenAI
 * describes its own limits the same way (a minute's allowance that refills continuously).
 *
 * Tokens are reserved at admission (the prompt's estimate plus max_tokens) and settled when the
 * request ends with what the answer's `usage` reported: the difference goes back into the bucket,
 * or is taken from it (the level may go below zero: later requests wait it off). A request already
 * admitted is never stopped by a limit: streams in flight run to their end.
 */

export interface Limits {
  rpm?: number;
  tpm?: number;
  maxParallelRequests?: number;
}

/** The state of one limit a response reports in x-ratelimit-* headers. */
export interface LimitState {
  limit: number;
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

export type Refusal = 'requests' | 'tokens' | 'parallel' | 'too_large' | 'unavailable';

export interface Verdict {
  ok: boolean;
  /** Why a request was refused. */
  refusal?: Refusal;
  /** For a refusal: milliseconds until it could pass (0: never, or unknown). */
  retryAfterMs: number;
  /** For a refusal: what the request asked for and what was used (the message says so). */
  requested?: number;
  requests?: LimitState;
  tokens?: LimitState;
}

const MINUTE_MS = 60_000;
/** Refills add fractions: a level this close below a whole unit counts as that unit. */
const EPSILON = 1e-9;
/** A key at its limit of requests in flight is told to come back after this long (nothing else is known). */
const PARALLEL_RETRY_MS = 1000;

interface Bucket {
  level: number;
  at: number;
}

interface KeyState {
  requests: Bucket | undefined;
  tokens: Bucket | undefined;
  inFlight: number;
}

function refill(b: Bucket, limit: number, now: number): void {
  const elapsed = now - b.at;
  if (elapsed > 0) b.level = Math.min(limit, b.level + (elapsed * limit) / MINUTE_MS);
  else if (b.level > limit) b.level = limit; // the limit was lowered
  b.at = Math.max(b.at, now);
}

function stateOf(b: Bucket, limit: number): LimitState {
  const level = Math.min(limit, b.level);
  return { limit, remaining: Math.max(0, Math.floor(level + EPSILON)), resetMs: Math.ceil(((limit - level) * MINUTE_MS) / limit) };
}

/** Milliseconds until bucket `b` holds `need` units. */
const waitFor = (b: Bucket, need: number, limit: number) => Math.max(1, Math.ceil(((need - EPSILON - b.level) * MINUTE_MS) / limit));

/**
 * The buckets of every key, by key name. The clock is injected (tests drive time); limits come
 * with each call, so a reloaded key file takes effect at once and the counts so far are kept.
 */
export class RateLimiter {
  private readonly keys = new Map<string, KeyState>();

  constructor(private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.keys.size;
  }

  private state(name: string): KeyState {
    let s = this.keys.get(name);
    if (s === undefined) {
      s = { requests: undefined, tokens: undefined, inFlight: 0 };
      this.keys.set(name, s);
    }
    return s;
  }

  /** Admits one request reserving `reserve` tokens, or says which limit refuses it and for how long. */
  admit(name: string, limits: Limits, reserve: number): Verdict {
    const now = this.now();
    const s = this.state(name);
    const { rpm, tpm, maxParallelRequests } = limits;
    let requests: LimitState | undefined;
    let tokens: LimitState | undefined;
    if (rpm !== undefined) {
      s.requests ??= { level: rpm, at: now };
      refill(s.requests, rpm, now);
    } else s.requests = undefined;
    if (tpm !== undefined) {
      s.tokens ??= { level: tpm, at: now };
      refill(s.tokens, tpm, now);
    } else s.tokens = undefined;
    const report = (): void => {
      if (rpm !== undefined) requests = stateOf(s.requests!, rpm);
      if (tpm !== undefined) tokens = stateOf(s.tokens!, tpm);
    };
    if (maxParallelRequests !== undefined && s.inFlight >= maxParallelRequests) {
      report();
      return { ok: false, refusal: 'parallel', retryAfterMs: PARALLEL_RETRY_MS, requested: 1, requests, tokens };
    }
    if (rpm !== undefined && s.requests!.level < 1 - EPSILON) {
      report();
      return { ok: false, refusal: 'requests', retryAfterMs: waitFor(s.requests!, 1, rpm), requested: 1, requests, tokens };
    }
    if (tpm !== undefined) {
      if (reserve > tpm) {
        report();
        return { ok: false, refusal: 'too_large', retryAfterMs: 0, requested: reserve, requests, tokens };
      }
      // at least one token must be there: a key in debt waits even for requests that reserve none
      const need = Math.max(1, reserve);
      if (s.tokens!.level < need - EPSILON) {
        report();
        return { ok: false, refusal: 'tokens', retryAfterMs: waitFor(s.tokens!, need, tpm), requested: reserve, requests, tokens };
      }
      s.tokens!.level -= reserve;
    }
    if (rpm !== undefined) s.requests!.level -= 1;
    s.inFlight++;
    report();
    return { ok: true, retryAfterMs: 0, requests, tokens };
  }

  /**
   * A request admitted by `admit` ended: its slot in flight is freed and its reservation replaced
   * by the tokens it used.
   */
  settle(name: string, limits: Limits, reserved: number, used: number): void {
    const s = this.keys.get(name);
    if (s === undefined) return;
    if (s.inFlight > 0) s.inFlight--;
    const t = s.tokens;
    if (t !== undefined && limits.tpm !== undefined && used !== reserved) {
      refill(t, limits.tpm, this.now());
      t.level = Math.min(limits.tpm, t.level + reserved - used);
    }
  }

  /** Requests in flight for a key (tests, and the primary's bookkeeping). */
  inFlight(name: string): number {
    return this.keys.get(name)?.inFlight ?? 0;
  }

  /** Drops the state of keys no longer configured (a reload): memory follows the key file. */
  retain(names: ReadonlySet<string>): void {
    for (const name of this.keys.keys()) if (!names.has(name) && this.keys.get(name)!.inFlight === 0) this.keys.delete(name);
  }
}

/** A duration as OpenAI writes it in x-ratelimit-reset-*: `120ms`, `12s`, `1.5s`, `6m0s`, `1h2m3s`. */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  // whole seconds from a minute on, tenths below (rounded up: never earlier than the truth)
  const tenths = Math.ceil(ms / 100) / 10;
  if (tenths < 60) return `${tenths}s`;
  const s = Math.ceil(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h > 0 ? `${h}h` : ''}${m}m${s % 60}s`;
}

/** The x-ratelimit-* headers of a verdict (flat name, value list), for answers and refusals alike. */
export function rateLimitHeaders(v: Verdict, out: string[]): string[] {
  const r = v.requests;
  if (r !== undefined) out.push('x-ratelimit-limit-requests', String(r.limit), 'x-ratelimit-remaining-requests', String(r.remaining), 'x-ratelimit-reset-requests', formatReset(r.resetMs));
  const t = v.tokens;
  if (t !== undefined) out.push('x-ratelimit-limit-tokens', String(t.limit), 'x-ratelimit-remaining-tokens', String(t.remaining), 'x-ratelimit-reset-tokens', formatReset(t.resetMs));
  return out;
}
