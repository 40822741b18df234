// the global `performance` is a lazy accessor on globalThis; the module's own binding skips it
import { performance } from 'node:perf_hooks';
import type { Backend } from './backend.js';
import type { BackendSet } from './backend-set.js';
import { routerError, type RouterError } from './errors.js';
import type { RequestInfo } from './request-info.js';
import type { EndReason } from './request-log.js';
import { Histogram, LATENCY_BUCKETS } from './traffic-stats.js';
import { servedBefore, WaitQueue, type Waiter } from './wait-queue.js';

/** How a request left the wait queue (or did not enter it: `full`), the `outcome` label. */
export const QUEUE_OUTCOMES = ['dispatched', 'timeout', 'full', 'client_gone'] as const;
const DISPATCHED = 0;
const TIMEOUT = 1;
const FULL = 2;
const CLIENT_GONE = 3;

/** A request as the wait queue sees it (the forwarder's exchange). */
export interface Waiting<T> {
  info: RequestInfo;
  /** Backends an earlier attempt failed on: not candidates for it. */
  tried: Set<Backend> | undefined;
  /** Its place in the queue while it waits. */
  waiter: Waiter<T> | undefined;
  /** Milliseconds waited in all, -1 while it never waited. */
  queuedMs: number;
}

/** What the forwarder does for the queue. */
export interface AdmissionHost<T> {
  /** Sends a request that waited to the backend chosen for it (counted in flight at once). */
  dispatch(item: T, backend: Backend): void;
  /** Answers a request with the queue's error (full, timed out). */
  refuse(item: T, err: RouterError, reason: EndReason): void;
}

export interface AdmissionOptions {
  /** Requests waiting per model at most (--queue-size; 0: none waits, a saturated model answers 503 at once). */
  queueSize: number;
  /** Body bytes of all waiting requests together at most (--queue-max-bytes). */
  maxBytes: number;
  /** Longest wait (--queue-timeout). */
  timeoutMs: number;
}

/**
 * Defaults: 1024 waiting requests per model (a burst of a few times what a fleet of engines runs
 * at once, answered within the timeout as they finish), 256 MiB of bodies (a quarter of
 * --max-buffered: waiting bodies never starve the reading of new requests), and 30 s (several
 * typical answers' time, and below the 60 s many clients and proxies give up after: the client
 * gets an answer it can act on, 503 with Retry-After, rather than a cut connection).
 */
export const QUEUE_DEFAULTS: AdmissionOptions = { queueSize: 1024, maxBytes: 256 * 1024 ** 2, timeoutMs: 30_000 };

/** The queue's counters for one model (`model` label; '' for requests that name none). */
export class QueueStats {
  readonly outcomes = new Float64Array(QUEUE_OUTCOMES.length);
  /** Seconds each request that left the queue waited in it, however it left. */
  readonly wait = new Histogram(LATENCY_BUCKETS);
}

/**
 * Admission under per-backend limits: a request whose model has backends, all of them full, waits
 * for one to have room in a bounded queue per model (wait-queue.ts) instead of being refused or
 * piling onto an engine. When a backend gets room (a request on it ended, it became routable or
 * joined, its limit was raised), the queues of its models are served in order through the model's
 * policy, which sees only backends with room. Nothing here runs while no backend is full.
 */
export class Admission<T extends Waiting<T>> {
  readonly queue: WaitQueue<T>;
  /** Counters by model label, kept from a model's first queued request on. */
  readonly stats = new Map<string, QueueStats>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  /** Backends that got room since the queues were last served (served in a microtask: see room). */
  private readonly roomFrom: Backend[] = [];
  private serving = false;

  constructor(
    private readonly backends: BackendSet,
    private readonly host: AdmissionHost<T>,
    readonly opts: AdmissionOptions,
  ) {
    this.queue = new WaitQueue<T>({ maxPerKey: opts.queueSize, maxBytes: opts.maxBytes, timeoutMs: opts.timeoutMs });
    backends.onRoom((b) => this.room(b));
  }

  /**
   * Called when the policy found no candidate for `item`: if that is because every routable backend
   * of its model (bar the ones it already tried) is full, it waits, or is refused at once when the
   * queue is full; true then (the request is taken care of), false when limits are not the reason.
   */
  admit(item: T, bytes: number): boolean {
    const model = item.info.model;
    if (!this.backends.saturated(model, item.tried)) return false;
    const now = performance.now();
    const w = this.queue.offer(item, model, item.info.priority, bytes, now);
    if (typeof w === 'string') {
      this.statsOf(model).outcomes[FULL]!++;
      const limits = this.queue.limits;
      const why =
        w === 'bytes' ? `waiting requests hold ${this.queue.bytes} body bytes of --queue-max-bytes ${limits.maxBytes}` : limits.maxPerKey === 0 ? 'no request waits: --queue-size 0' : `${limits.maxPerKey} requests wait for this model`;
      this.host.refuse(item, routerError.queueFull(model, why), 'queue_full');
      return true;
    }
    item.waiter = w;
    // the model's series exist from its first waiter on (its length gauge reads 0 when none waits)
    this.statsOf(model);
    this.arm(now);
    return true;
  }

  /** The client of a waiting request went away: it leaves the queue at once. */
  leave(item: T): void {
    const w = item.waiter;
    if (w === undefined) return;
    this.queue.remove(w);
    this.left(item, w, CLIENT_GONE, performance.now());
  }

  private left(item: T, w: Waiter<T>, outcome: number, now: number): void {
    item.waiter = undefined;
    const ms = now - w.enqueuedAt;
    item.queuedMs = Math.max(item.queuedMs, 0) + ms;
    const stats = this.statsOf(w.key);
    stats.outcomes[outcome]!++;
    stats.wait.observe(ms / 1000);
  }

  private statsOf(model: string | undefined): QueueStats {
    const label = model ?? '';
    let s = this.stats.get(label);
    if (s === undefined) this.stats.set(label, (s = new QueueStats()));
    return s;
  }

  /** One timer, due when the oldest waiter's wait ends (arrival order is deadline order). */
  private arm(now: number): void {
    const due = this.queue.nextDeadline();
    if (due === undefined || due >= this.timerAt) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = due;
    // a millisecond late rather than early: timers round, and an early one would find nothing due
    this.timer = setTimeout(this.expire, Math.max(0, due - now) + 1);
    this.timer.unref();
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    const seconds = this.opts.timeoutMs / 1000;
    this.queue.expire(now, (w) => {
      this.left(w.value, w, TIMEOUT, now);
      this.host.refuse(w.value, routerError.queueTimeout(w.key, seconds), 'queue_timeout');
    });
    this.arm(now);
  };

  /**
   * A backend has room: its models' queues are served in a microtask, after the change that made
   * room is complete (it comes from inside the backend set's bookkeeping); a burst of such changes
   * is served once.
   */
  private room(b: Backend): void {
    if (this.queue.length === 0) return;
    this.roomFrom.push(b);
    if (this.serving) return;
    this.serving = true;
    queueMicrotask(this.serveRoom);
  }

  private readonly serveRoom = (): void => {
    const from = this.roomFrom;
    // dispatching can make room elsewhere (an attempt failing at once): those join this loop
    for (let i = 0; i < from.length && this.queue.length > 0; i++) {
      const members = from[i]!.members;
      if (members.length === 1) {
        const model = members[0]!.pool.model;
        while (this.queue.lengthOf(model) > 0 && this.serveOne(model));
      } else this.serveModels(members.map((m) => m.pool.model));
    }
    from.length = 0;
    this.serving = false;
  };

  /**
   * A backend of several models: each place goes to the request that has waited longest (priority
   * first) among its models' queues, so that one model's queue cannot starve another's.
   */
  private serveModels(models: Array<string | undefined>): void {
    const queue = this.queue;
    models = models.filter((m) => queue.lengthOf(m) > 0);
    while (models.length > 0) {
      let best = 0;
      for (let k = 1; k < models.length; k++) if (servedBefore(queue.peek(models[k])!, queue.peek(models[best])!)) best = k;
      const model = models[best];
      if (!this.serveOne(model) || queue.lengthOf(model) === 0) models.splice(best, 1);
    }
  }

  /**
   * Sends the model's first waiting request its policy finds a backend with room for; false when
   * there is none. A waiting retry that only a backend it already tried has room for is looked past
   * (it keeps its place) so that it does not hold up the requests behind it.
   */
  private serveOne(model: string | undefined): boolean {
    const now = Date.now();
    let passed: Array<Waiter<T>> | undefined;
    let w: Waiter<T> | undefined;
    let sent = false;
    while ((w = this.queue.peek(model)) !== undefined) {
      const item = w.value;
      const backend = this.backends.pick(item.info, now, item.tried);
      if (backend !== undefined) {
        this.queue.remove(w);
        this.left(item, w, DISPATCHED, performance.now());
        this.host.dispatch(item, backend);
        sent = true;
        break;
      }
      if (item.tried === undefined || item.tried.size === 0) break;
      this.queue.hold(w);
      (passed ??= []).push(w);
    }
    if (passed !== undefined) for (const p of passed) this.queue.unhold(p);
    return sent;
  }

  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
