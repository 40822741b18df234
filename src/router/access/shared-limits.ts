/**
 * Per-key limits with `--workers N`: the primary keeps the buckets for every worker, so a key's
 * limits hold for the router as a whole, whichever worker a connection landed on (a client on one
 * keep-alive connection, or on many, sees the same limit). A keyed request with limits costs one
 * IPC round trip to the primary at admission and one message at its end; requests of keys without
 * limits, and every request when no keys are configured, never leave their worker, and a key out of
 * requests per minute is refused by the worker itself until its bucket has refilled. A worker that
 * dies gives back its requests in flight. Several router replicas do not share limits: each
 * enforces the whole limit (run one router per key's traffic, or divide the limits among them).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../../common/log.js';
import type { LimitKeeper } from './gate.js';
import { RateLimiter, type Limits, type Verdict } from './rate-limits.js';

const ADMIT = 'infini-router:limit-admit';
const VERDICT = 'infini-router:limit-verdict';
const SETTLE = 'infini-router:limit-settle';
const RETAIN = 'infini-router:limit-retain';
/** The primary got SIGHUP: every worker reloads its keys. */
const RELOAD = 'infini-router:keys-reload';

/** How long a worker waits for the primary's verdict before answering 503. */
const VERDICT_TIMEOUT_MS = 2000;

interface LimitMessage {
  type?: string;
  id?: number;
  name?: string;
  limits?: Limits;
  reserve?: number;
  reserved?: number;
  used?: number;
  names?: string[];
  verdict?: Verdict;
}

const isLimits = (l: unknown): l is Limits => typeof l === 'object' && l !== null;
const num = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) ? n : 0);

/** In the primary: answers the workers' admissions and settlements; forwards SIGHUP to them. */
export function serveSharedLimits(log: Logger, limiter = new RateLimiter()): void {
  /** Requests in flight per worker and key, given back when the worker dies. */
  const held = new Map<number, Map<string, { n: number; limits: Limits }>>();
  const hold = (w: Worker, name: string, limits: Limits, d: number) => {
    let byKey = held.get(w.id);
    if (byKey === undefined) held.set(w.id, (byKey = new Map()));
    const h = byKey.get(name) ?? { n: 0, limits };
    h.n += d;
    if (h.n <= 0) byKey.delete(name);
    else byKey.set(name, h);
  };
  cluster.on('message', (worker, m: LimitMessage) => {
    if (typeof m?.type !== 'string' || (typeof m.name !== 'string' && m.type !== RETAIN)) return;
    if (m.type === ADMIT && isLimits(m.limits)) {
      const verdict = limiter.admit(m.name!, m.limits, num(m.reserve));
      if (verdict.ok) hold(worker, m.name!, m.limits, 1);
      if (worker.isConnected()) worker.send({ type: VERDICT, id: m.id, verdict });
    } else if (m.type === SETTLE && isLimits(m.limits)) {
      limiter.settle(m.name!, m.limits, num(m.reserved), num(m.used));
      hold(worker, m.name!, m.limits, -1);
    } else if (m.type === RETAIN && Array.isArray(m.names)) {
      limiter.retain(new Set(m.names));
    }
  });
  cluster.on('exit', (worker) => {
    const byKey = held.get(worker.id);
    held.delete(worker.id);
    if (byKey === undefined) return;
    for (const [name, h] of byKey) for (let i = 0; i < h.n; i++) limiter.settle(name, h.limits, 0, 0);
  });
  process.on('SIGHUP', () => {
    log.info('SIGHUP: the workers reload their api keys');
    for (const w of Object.values(cluster.workers ?? {})) if (w?.isConnected()) w.send({ type: RELOAD });
  });
}

/** In a worker: `fn` when the primary passes on a SIGHUP. */
export function onPrimaryReload(fn: () => void): void {
  process.on('message', (m: LimitMessage) => {
    if (m?.type === RELOAD) fn();
  });
}

/** In a worker: the limits as the primary keeps them. */
export class SharedLimits implements LimitKeeper {
  private nextId = 0;
  private readonly waiting = new Map<number, { done: (v: Verdict) => void; timer: NodeJS.Timeout; name: string; limits: Limits; reserve: number }>();

  constructor(private readonly timeoutMs = VERDICT_TIMEOUT_MS) {
    process.on('message', (m: LimitMessage) => {
      if (m?.type !== VERDICT || typeof m.id !== 'number') return;
      const w = this.waiting.get(m.id);
      const verdict = m.verdict;
      if (w === undefined) {
        // answered after the worker gave up waiting: an admission is given back at once
        const late = this.late.get(m.id);
        this.late.delete(m.id);
        if (late !== undefined && verdict?.ok) this.settle(late.name, late.limits, late.reserve, 0);
        return;
      }
      this.waiting.delete(m.id);
      clearTimeout(w.timer);
      if (verdict?.refusal === 'requests' && verdict.retryAfterMs > 0) this.outOfRequests.set(w.name, { until: Date.now() + verdict.retryAfterMs, rpm: w.limits.rpm, verdict });
      w.done(verdict ?? { ok: false, refusal: 'unavailable', retryAfterMs: 1000 });
    });
  }

  admit(name: string, limits: Limits, reserve: number, done: (v: Verdict) => void): void {
    // a key out of requests stays out until its bucket refills (nothing else gives requests back):
    // a client that keeps knocking is answered here, without a round trip to the primary
    const out = this.outOfRequests.get(name);
    if (out !== undefined) {
      const left = out.until - Date.now();
      if (left > 0 && out.rpm === limits.rpm) {
        const r = out.verdict.requests;
        done({ ...out.verdict, retryAfterMs: left, requests: r && { ...r, resetMs: Math.max(0, r.resetMs - (out.verdict.retryAfterMs - left)) } });
        return;
      }
      this.outOfRequests.delete(name);
    }
    const id = ++this.nextId;
    const timer = setTimeout(() => {
      const w = this.waiting.get(id)!;
      this.waiting.delete(id);
      if (this.late.size >= 10_000) this.late.clear(); // a primary that never answers: bounded
      this.late.set(id, w);
      done({ ok: false, refusal: 'unavailable', retryAfterMs: 1000 });
    }, this.timeoutMs);
    this.waiting.set(id, { done, timer, name, limits, reserve });
    process.send!({ type: ADMIT, id, name, limits, reserve });
  }

  /** Keys the primary refused for requests per minute, until when (bounded by the configured keys). */
  private readonly outOfRequests = new Map<string, { until: number; rpm: number | undefined; verdict: Verdict }>();

  /** Admissions given up on: if the primary admits them after all, they are settled at once. */
  private readonly late = new Map<number, { name: string; limits: Limits; reserve: number }>();

  settle(name: string, limits: Limits, reserved: number, used: number): void {
    process.send?.({ type: SETTLE, name, limits, reserved, used });
  }

  retain(names: ReadonlySet<string>): void {
    this.outOfRequests.clear();
    process.send?.({ type: RETAIN, names: [...names] });
  }
}
