import type { Logger } from '../common/log.js';
import type { ServiceStore } from './store.js';

/**
 * Stale cleanup: every interval, delete records silent for longer than the stale timeout, silence
 * measured on the liveness clock (time the registry was paused, or self-preservation held expiry,
 * does not count). A second, faster timer re-evaluates heartbeat expiry so `health` events fire
 * without a read.
 */
export class StaleReaper {
  private cleanupTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;

  constructor(
    private readonly store: ServiceStore,
    private readonly opts: { cleanupIntervalMs: number; staleTimeoutMs: number; healthCheckEveryMs: number },
    private readonly log: Logger,
    /** Counts evictions for metrics. */
    private readonly counters?: { evictions: number },
  ) {}

  start(): void {
    this.cleanupTimer = setInterval(() => void this.sweep(), this.opts.cleanupIntervalMs);
    this.healthTimer = setInterval(() => this.store.evaluateHealth(), this.opts.healthCheckEveryMs);
    this.cleanupTimer.unref();
    this.healthTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.cleanupTimer);
    clearInterval(this.healthTimer);
    await this.sweeping;
  }

  async sweep(): Promise<string[]> {
    if (this.sweeping) return [];
    const run = this.store.expireStale(this.opts.staleTimeoutMs);
    this.sweeping = run.catch(() => undefined);
    try {
      const expired = await run;
      if (this.counters) this.counters.evictions += expired.length;
      for (const { rec, silentMs } of expired) this.log.info({ service: rec.name, silent_s: Math.round(silentMs / 1000) }, 'removed stale service');
      return expired.map((e) => e.rec.name);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'stale cleanup failed; retrying at the next interval');
      return [];
    } finally {
      this.sweeping = undefined;
    }
  }
}
