import { fnv1a, mix32 } from './hash.js';

/**
 * What one probe found: the target answered as healthy, answered otherwise (or not at all), or
 * nothing can be said because the prober itself was too busy to tell (see checkHttp); `gone`: the
 * target no longer exists (it is forgotten, and the probe not counted).
 */
export type ProbeOutcome = 'ok' | 'failed' | 'inconclusive' | 'gone';

/** Counters as /stats shows them; `done` counts every finished probe, `failed` and `inconclusive` are part of it. */
export interface ProbeStats {
  concurrency: number;
  in_flight: number;
  done: number;
  failed: number;
  inconclusive: number;
}

/** Time and timers, injectable so that unit tests drive the scheduler with a fake clock. */
export interface SchedulerClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: SchedulerClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Regular probes land at a target's own phase of the interval, give or take this fraction of it. */
const JITTER = 0.1;
/** Due within this many ms counts as due now: one timer wake-up starts a batch, not one probe each. */
const BATCH_MS = 5;

export interface ProbeSchedulerOptions<T> {
  intervalMs: number;
  concurrency: number;
  probe: (target: T, key: string) => Promise<ProbeOutcome>;
  /** A new target's first probe: at once (`now`), or at its phase of the interval, within one interval (`slot`). */
  first: 'now' | 'slot';
  /** Delay after the n-th conclusive failure in a row (n from 1); undefined: the regular slot. */
  failedRetryMs?: (failuresInARow: number) => number | undefined;
  /**
   * Delay after an inconclusive probe: it is retried soon, with jitter, the delay doubling per
   * further inconclusive one up to the interval (a prober that stays swamped must not probe
   * every target every second on top).
   */
  inconclusiveRetryMs: number;
  /** A probe that threw (a bug, not a failure of the target): counted inconclusive and reported here. */
  onError: (err: unknown, key: string) => void;
  clock?: SchedulerClock;
  random?: () => number;
}

interface Entry<T> {
  key: string;
  target: T;
  /** When its next probe is due (clock time). */
  due: number;
  /** Position in the heap; -1 while not queued (probe under way, or removed). */
  at: number;
  /** Its own offset within the interval, stable per key: spreads targets evenly over the interval. */
  phase: number;
  failures: number;
  inconclusives: number;
}

/**
 * Probes many targets periodically with a bounded number under way at once, each target at its
 * own phase of the interval (a hash of its key, plus jitter): load is N / interval per second,
 * never a round of N at once. Targets wait in a min-heap by due time with one timer armed for the
 * earliest, so each probe costs O(log N) and nothing scans all targets. A target is never probed
 * twice at once; a removed one is forgotten (a probe under way finishes and is not rescheduled).
 * When probes cannot keep up (slow or hung targets hold every slot), due targets wait in the heap,
 * the most overdue first.
 */
export class ProbeScheduler<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly heap: Entry<T>[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly clock: SchedulerClock;
  private readonly random: () => number;
  private timer: unknown;
  private timerDue = Infinity;
  private started = false;
  private inFlight = 0;
  private done = 0;
  private failed = 0;
  private inconclusive = 0;

  constructor(private readonly opts: ProbeSchedulerOptions<T>) {
    if (!(opts.intervalMs > 0) || !(opts.concurrency >= 1)) throw new RangeError('probe scheduler: interval and concurrency must be positive');
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
  }

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  stats(): ProbeStats {
    return { concurrency: this.opts.concurrency, in_flight: this.inFlight, done: this.done, failed: this.failed, inconclusive: this.inconclusive };
  }

  /** Adds a target (first probe per `first`); a key already here only gets its target replaced. */
  add(key: string, target: T): void {
    const existing = this.entries.get(key);
    if (existing) {
      existing.target = target;
      return;
    }
    const now = this.clock.now();
    const phase = (mix32(fnv1a(key)) / 2 ** 32) * this.opts.intervalMs;
    const entry: Entry<T> = { key, target, due: now, at: -1, phase, failures: 0, inconclusives: 0 };
    if (this.opts.first === 'slot') entry.due = this.slotAfter(entry, now, 0);
    this.entries.set(key, entry);
    this.push(entry);
    this.pump();
  }

  /** Forgets a target (only if it is still `target`, when given). */
  remove(key: string, target?: T): void {
    const entry = this.entries.get(key);
    if (!entry || (target !== undefined && entry.target !== target)) return;
    this.entries.delete(key);
    if (entry.at >= 0) this.removeAt(entry.at);
  }

  start(): void {
    this.started = true;
    this.pump();
  }

  /** Stops scheduling and waits for the probes under way. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
    await Promise.all(this.running);
  }

  /** Starts every due probe a free slot allows, then arms the timer for the next one. */
  private pump(): void {
    if (!this.started) return;
    const now = this.clock.now();
    while (this.inFlight < this.opts.concurrency && this.heap.length > 0 && this.heap[0]!.due <= now + BATCH_MS) this.run(this.popMin());
    this.arm(now);
  }

  private arm(now: number): void {
    // all slots busy: the next probe to finish pumps again
    if (this.inFlight >= this.opts.concurrency || this.heap.length === 0) return;
    const due = this.heap[0]!.due;
    if (this.timer !== undefined && this.timerDue <= due) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timerDue = due;
    this.timer = this.clock.setTimer(
      () => {
        this.timer = undefined;
        this.timerDue = Infinity;
        this.pump();
      },
      Math.max(0, due - now),
    );
  }

  private run(entry: Entry<T>): void {
    this.inFlight++;
    const task = (async () => {
      let outcome: ProbeOutcome;
      try {
        outcome = await this.opts.probe(entry.target, entry.key);
      } catch (err) {
        this.opts.onError(err, entry.key);
        outcome = 'inconclusive';
      }
      this.finished(entry, outcome);
    })();
    this.running.add(task);
    void task.finally(() => this.running.delete(task));
  }

  private finished(entry: Entry<T>, outcome: ProbeOutcome): void {
    this.inFlight--;
    if (outcome === 'gone') this.remove(entry.key, entry.target);
    else this.done++;
    if (outcome === 'failed') this.failed++;
    if (outcome === 'inconclusive') this.inconclusive++;
    if (this.entries.get(entry.key) === entry) {
      const now = this.clock.now();
      entry.due = this.nextDue(entry, outcome, now);
      this.push(entry);
    }
    this.pump();
  }

  private nextDue(entry: Entry<T>, outcome: ProbeOutcome, now: number): number {
    if (outcome === 'inconclusive') {
      entry.inconclusives++;
      const delay = Math.min(this.opts.inconclusiveRetryMs * 2 ** Math.min(entry.inconclusives - 1, 30), this.opts.intervalMs);
      return now + delay * (1 + this.random() / 2);
    }
    entry.inconclusives = 0;
    if (outcome === 'ok') entry.failures = 0;
    else {
      entry.failures++;
      const retry = this.opts.failedRetryMs?.(entry.failures);
      if (retry !== undefined) return now + retry;
    }
    return this.slotAfter(entry, now, this.opts.intervalMs / 2);
  }

  /** The target's first phase slot at least `gapMs` after `now`, plus jitter (never before `now`). */
  private slotAfter(entry: Entry<T>, now: number, gapMs: number): number {
    const interval = this.opts.intervalMs;
    const slot = entry.phase + Math.ceil((now + gapMs - entry.phase) / interval) * interval;
    const due = slot + (this.random() - 0.5) * JITTER * interval;
    // jitter that lands in the past moves to the next slot rather than to now: with a long interval,
    // clamping to now probed a fresh target at once about one start in eighty, whatever the interval said
    return due < now ? due + interval : due;
  }

  // --- binary min-heap on `due`, each entry knowing its index (O(log N) removal) ---

  private push(entry: Entry<T>): void {
    entry.at = this.heap.length;
    this.heap.push(entry);
    this.up(entry.at);
  }

  private popMin(): Entry<T> {
    const top = this.heap[0]!;
    this.removeAt(0);
    return top;
  }

  private removeAt(i: number): void {
    const heap = this.heap;
    const gone = heap[i]!;
    const last = heap.pop()!;
    gone.at = -1;
    if (last === gone) return;
    heap[i] = last;
    last.at = i;
    this.down(i);
    this.up(last.at);
  }

  private up(i: number): void {
    const heap = this.heap;
    const e = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p]!;
      if (parent.due <= e.due) break;
      heap[i] = parent;
      parent.at = i;
      i = p;
    }
    heap[i] = e;
    e.at = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const e = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && heap[r]!.due < heap[l]!.due ? r : l;
      const child = heap[c]!;
      if (child.due >= e.due) break;
      heap[i] = child;
      child.at = i;
      i = c;
    }
    heap[i] = e;
    e.at = i;
  }
}
