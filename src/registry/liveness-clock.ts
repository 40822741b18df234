/** How often the clock looks at itself; a gap between two looks much longer than this is a pause. */
export const PAUSE_TICK_MS = 100;
/** Scheduling jitter that is not a pause: gaps up to tick + this are ordinary. */
export const PAUSE_TOLERANCE_MS = 200;

/**
 * The time heartbeats age in: monotonic milliseconds minus the time this process was not running
 * (SIGSTOP, VM freeze, a long GC or a blocked event loop; system sleep already stops the monotonic
 * clock) and minus the time expiry was held by self-preservation.
 *
 * A pause is seen as a gap between two reads longer than the tick plus tolerance: while the event
 * loop runs, the tick reads the clock at least every tick. Every read checks first, so whatever
 * runs first after a pause (a timer, a request, a sweep) already sees the pause credited: no read,
 * health evaluation or sweep can see a heartbeat aged by time in which it could not have been read.
 * Wall-clock steps (NTP, a changed date) do not age heartbeats either.
 */
export class LivenessClock {
  private last: number;
  private pausedMs = 0;
  /** Running time minus liveness time, from holds that ended. */
  private heldMs = 0;
  /** The liveness time the clock stands at while holding. */
  private frozenAt: number | undefined;
  private holdRunningStart = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: {
      monotonic?: () => number;
      tickMs?: number;
      toleranceMs?: number;
      /** Told about each pause credited (for a log line). */
      onPause?: (pausedMs: number) => void;
    } = {},
  ) {
    this.last = this.monotonic();
  }

  private monotonic(): number {
    return (this.opts.monotonic ?? performance.now.bind(performance))();
  }

  private get tickMs(): number {
    return this.opts.tickMs ?? PAUSE_TICK_MS;
  }

  start(): void {
    if (this.timer) return;
    this.last = this.monotonic();
    this.timer = setInterval(() => this.running(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Milliseconds this process has been running (pauses excluded); checks for a pause first. */
  running(): number {
    const m = this.monotonic();
    const gap = m - this.last;
    this.last = m;
    if (gap > this.tickMs + (this.opts.toleranceMs ?? PAUSE_TOLERANCE_MS)) {
      this.pausedMs += gap - this.tickMs;
      this.opts.onPause?.(gap - this.tickMs);
    }
    return m - this.pausedMs;
  }

  /** Liveness time: running time, standing still while expiry is held. */
  now(): number {
    const running = this.running();
    return this.frozenAt ?? running - this.heldMs;
  }

  get holding(): boolean {
    return this.frozenAt !== undefined;
  }

  /**
   * Stops heartbeat ageing (self-preservation) at `at` (default now; never later than now), so a
   * guard that notices a threshold a tick late can stop the clock where it was crossed.
   */
  hold(at?: number): void {
    if (this.frozenAt !== undefined) return;
    const now = this.now();
    this.frozenAt = Math.min(at ?? now, now);
    this.holdRunningStart = this.running();
  }

  /** Running time spent in the current hold (0 when not holding). */
  heldFor(): number {
    return this.frozenAt === undefined ? 0 : this.running() - this.holdRunningStart;
  }

  /** Ends a hold; ageing resumes from where it stood. Returns the hold's length in running time. */
  release(): number {
    if (this.frozenAt === undefined) return 0;
    const running = this.running();
    this.heldMs = running - this.frozenAt;
    this.frozenAt = undefined;
    return running - this.holdRunningStart;
  }
}
