import type { Logger } from '../common/log.js';
import type { ServiceStore } from './store.js';

/**
 * Stale cleanup: every interval, delete records whose last heartbeat is older than the stale
 * timeout. The same timer re-evaluates heartbeat expiry so `health` events fire without a read.
 */
export class StaleReaper {
  private cleanupTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ServiceStore,
    private readonly opts: { cleanupIntervalMs: number; staleTimeoutMs: number; healthCheckEveryMs: number },
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.cleanupTimer = setInterval(() => void this.sweep(), this.opts.cleanupIntervalMs);
    this.healthTimer = setInterval(() => this.store.evaluateHealth(), this.opts.healthCheckEveryMs);
    this.cleanupTimer.unref();
    this.healthTimer.unref();
  }

  stop(): void {
    clearInterval(this.cleanupTimer);
    clearInterval(this.healthTimer);
  }

  async sweep(): Promise<string[]> {
    const { services } = await this.store.list();
    const now = this.now();
    const removed: string[] = [];
    for (const rec of services) {
      if (now - rec.lastHeartbeatMs > this.opts.staleTimeoutMs) {
        await this.store.delete(rec.name);
        removed.push(rec.name);
        this.log.info({ service: rec.name, silent_s: Math.round((now - rec.lastHeartbeatMs) / 1000) }, 'removed stale service');
      }
    }
    return removed;
  }
}
