import type { Logger } from '../common/log.js';
import type { LivenessClock } from './liveness-clock.js';

/**
 * Mass expiry: more than this fraction of all records silent (no heartbeat for the heartbeat
 * timeout) at once...
 */
export const MASS_EXPIRY_FRACTION = 0.5;
/** ...and at least this many of them. Fewer silent records always expire normally. */
export const MASS_EXPIRY_MIN_RECORDS = 3;

/**
 * Whether `silent` of `total` records going quiet together looks like the registry losing the
 * world rather than the world losing backends. One rack of a larger fleet, or one or two
 * backends of a small one, stays below it.
 */
export function isMassExpiry(silent: number, total: number): boolean {
  return silent >= MASS_EXPIRY_MIN_RECORDS && silent > total * MASS_EXPIRY_FRACTION;
}

/** The smallest count of silent records that is a mass among `total`, or undefined if none can be. */
function massCount(total: number): number | undefined {
  const m = Math.max(MASS_EXPIRY_MIN_RECORDS, Math.floor(total * MASS_EXPIRY_FRACTION) + 1);
  return m > total ? undefined : m;
}

/**
 * The liveness time at which silence becomes a mass expiry: when the m-th oldest heartbeat passes
 * the timeout, m being the smallest mass count. Undefined when there are too few records for any.
 */
export function massExpiryStart(heardAts: ArrayLike<number>, heartbeatTimeoutMs: number): number | undefined {
  const m = massCount(heardAts.length);
  if (m === undefined) return undefined;
  const sorted = Float64Array.from(heardAts).sort();
  return sorted[m - 1]! + heartbeatTimeoutMs;
}

/**
 * What self-preservation asks of the records' heartbeats. The store answers from records kept in
 * heartbeat order, in time proportional to the records that went silent, not to all of them.
 */
export interface Silence {
  total: number;
  /** How many records are silent (no heartbeat for the timeout) at liveness time `t` (now or later). */
  silentAt(t: number): number;
  /** The liveness time of the n-th oldest heartbeat (1-based). */
  nthOldest(n: number): number;
}

/** A Silence over a plain list of heartbeat times (tests, small sets): O(N) per question. */
export function silenceOf(heardAts: ArrayLike<number>, heartbeatTimeoutMs: number): Silence {
  return {
    total: heardAts.length,
    silentAt: (t) => Array.prototype.filter.call(heardAts, (h: number) => t - h >= heartbeatTimeoutMs).length,
    nthOldest: (n) => Float64Array.from(heardAts).sort()[n - 1]!,
  };
}

export type PreservationState = 'normal' | 'holding' | 'spent';

/**
 * Self-preservation, after Eureka's: when heartbeats stop arriving from most services at once, the
 * likelier cause is on the registry's side (its network, a proxy in front of it, a pause the clock
 * could not see), so expiry is held: the liveness clock stands still just before the threshold
 * was crossed, so no more records turn unhealthy by expiry and none is evicted. Unlike Eureka, the
 * hold is bounded: heartbeats that come back end it at once; otherwise after `maxHoldMs` (the
 * stale timeout) the loss is taken as real and ageing resumes where it stood: the held records
 * turn unhealthy at once and are evicted when their (hold-excluded) silence passes the stale
 * timeout, so a real loss of most services costs one hold of delay. The guard then stays off until
 * silence is below the threshold again, so one loss is never held twice.
 */
export class SelfPreservation {
  private current: PreservationState = 'normal';

  constructor(
    private readonly clock: LivenessClock,
    private readonly heartbeatTimeoutMs: number,
    private readonly maxHoldMs: number,
    private readonly log?: Logger,
  ) {}

  /** `spent`: a hold ended without heartbeats resuming; off until silence is below the threshold. */
  get state(): PreservationState {
    return this.current;
  }

  /**
   * Called with the records' heartbeats (a list of liveness times, or a Silence) before each health
   * evaluation and sweep, so both see the clock held or released. `context` is added to the log lines.
   */
  assess(heard: ArrayLike<number> | Silence, context: Record<string, unknown> = {}): void {
    const silence = 'silentAt' in heard ? heard : silenceOf(heard, this.heartbeatTimeoutMs);
    const m = massCount(silence.total);
    const now = this.clock.now();
    const massBy = (t: number) => m !== undefined && silence.silentAt(t) >= m;
    const silentAt = (t: number) => silence.silentAt(t);
    if (this.current === 'normal' && massBy(now)) {
      // Stop where the threshold was crossed (up to one evaluation ago), not where it was noticed.
      this.clock.hold(silence.nthOldest(m!) + this.heartbeatTimeoutMs - 1);
      this.current = 'holding';
      this.log?.warn(
        { ...context, silent: silentAt(now), total: silence.total, max_hold_s: this.maxHoldMs / 1000 },
        'self-preservation: most services went silent at once; holding expiry (no health flips, no evictions) until heartbeats resume or the hold ends',
      );
    } else if (this.current === 'holding' && !massBy(now + 1)) {
      const held = this.clock.release();
      this.current = 'normal';
      this.log?.info({ ...context, total: silence.total, held_s: Math.round(held / 1000) }, 'self-preservation ended: heartbeats resumed');
    } else if (this.current === 'holding' && this.clock.heldFor() >= this.maxHoldMs) {
      const held = this.clock.release();
      this.current = 'spent';
      this.log?.warn(
        { ...context, silent: silentAt(now + 1), total: silence.total, held_s: Math.round(held / 1000) },
        'self-preservation ended without heartbeats resuming: taken as a real loss; the silent services expire now',
      );
    } else if (this.current === 'spent' && !massBy(now)) {
      this.current = 'normal';
    }
  }
}
