/**
 * What makes engine models advance: VirtualTime runs them (and any timed callbacks, such as
 * request arrivals) as a discrete-event loop, as fast as the CPU goes; RealTimeDriver runs one
 * against the wall clock with timers, for the HTTP mock.
 */
import type { Clock, EngineModel } from './engine-model.js';

interface Timed {
  atMs: number;
  seq: number;
  fn: () => void;
}

/**
 * A virtual clock with its own event loop. Callbacks scheduled with at()/after() (arrivals,
 * think times) and the engines' steps run in time order; at equal times callbacks go first, so
 * requests arriving at the instant a step is planned join it.
 */
export class VirtualTime implements Clock {
  private t = 0;
  private seq = 0;
  /** Sorted by time, then by scheduling order. */
  private readonly timers: Timed[] = [];

  now(): number {
    return this.t;
  }

  /** Runs `fn` at `atMs` (or now, if that is past). */
  at(atMs: number, fn: () => void): void {
    const item = { atMs: Math.max(atMs, this.t), seq: this.seq++, fn };
    const timers = this.timers;
    let lo = 0;
    let hi = timers.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (timers[mid]!.atMs <= item.atMs) lo = mid + 1;
      else hi = mid;
    }
    timers.splice(lo, 0, item);
  }

  after(ms: number, fn: () => void): void {
    this.at(this.t + ms, fn);
  }

  /**
   * Runs callbacks and engine steps in time order until none is left or the next is after
   * `untilMs`; returns the number of events run.
   */
  run(engines: readonly EngineModel[], untilMs = Infinity): number {
    let events = 0;
    while (this.next(engines, untilMs)) events++;
    return events;
  }

  /** Runs the earliest callback or engine step (not after `untilMs`); false if there is none. */
  next(engines: readonly EngineModel[], untilMs = Infinity): boolean {
    let engine: EngineModel | undefined;
    let engineAt = Infinity;
    for (const e of engines) {
      const t = e.nextEventTime();
      if (t !== undefined && t < engineAt) {
        engineAt = t;
        engine = e;
      }
    }
    const timer = this.timers[0];
    if (timer !== undefined && timer.atMs <= engineAt) {
      if (timer.atMs > untilMs) return false;
      this.timers.shift();
      this.t = Math.max(this.t, timer.atMs);
      timer.fn();
      return true;
    }
    if (engine === undefined || engineAt > untilMs) return false;
    this.t = Math.max(this.t, engineAt);
    engine.step();
    return true;
  }
}

/**
 * Runs an engine in real time: a timer for the end of the step in flight, the steps that are
 * due run back to back (at most `maxSyncSteps` before yielding to I/O, so zero-time profiles
 * do not monopolise the event loop). Build the engine with a real clock and a few ms of
 * `catchUpMs` so timer slop does not slow it down.
 */
export class RealTimeDriver {
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private immediate: NodeJS.Immediate | undefined;
  private running = false;
  private stopped = false;

  constructor(
    readonly engine: EngineModel,
    /** A step's error (a request handler threw): the engine stays consistent and goes on. */
    private readonly onError: (err: unknown) => void,
    private readonly maxSyncSteps = 64,
    /** Called after each run of due steps (the HTTP mock sends the events its handlers queued). */
    private readonly afterRun?: () => void,
  ) {
    engine.onWork = () => this.schedule();
  }

  /**
   * Runs the steps that are due now, then arms the timer for the next one. A call from inside a
   * request handler returns at once (the outer run goes on).
   */
  runDue(): void {
    if (this.running || this.stopped) return;
    // a call made right after a submit runs what the pending immediate would have: drop it
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = undefined;
    }
    this.running = true;
    const { engine } = this;
    // one reading of the clock for the whole run: zero-time steps (the fast profile) end at once,
    // and a clock read per step was a good part of their cost
    const now = engine.clock.now();
    try {
      // counted in engine steps: a zero-time burst is several
      const until = engine.stats.steps + this.maxSyncSteps;
      for (let n = 0; n < this.maxSyncSteps && engine.stats.steps < until; n++) {
        const t = engine.nextEventTime();
        if (t === undefined || t > now) break;
        try {
          engine.step(now);
        } catch (err) {
          this.onError(err);
        }
      }
    } finally {
      this.running = false;
    }
    if (this.afterRun) {
      try {
        this.afterRun();
      } catch (err) {
        this.onError(err);
      }
    }
    this.schedule();
  }

  /** Stops arming timers (the engine keeps its state). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.engine.onWork = undefined;
  }

  private schedule(): void {
    if (this.running || this.stopped) return; // runDue schedules when it ends
    const t = this.engine.nextEventTime();
    if (t === undefined) return;
    const delay = t - this.engine.clock.now();
    if (delay <= 0) {
      this.immediate ??= setImmediate(() => {
        this.immediate = undefined;
        this.runDue();
      });
      return;
    }
    if (this.timer !== undefined && this.timerAt <= t) return;
    clearTimeout(this.timer);
    this.timerAt = t;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.runDue();
    }, Math.ceil(delay));
  }
}
