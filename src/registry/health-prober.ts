import type { Logger } from '../common/log.js';
import { probeUrl, type ServiceRecord } from './record.js';
import type { ServiceStore } from './store.js';

/** GETs a health URL; any 2xx is healthy. Never throws and never takes longer than `timeoutMs`. */
export async function probe(url: string, timeoutMs: number): Promise<'healthy' | 'unhealthy'> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.ok ? 'healthy' : 'unhealthy';
  } catch {
    return 'unhealthy';
  }
}

/**
 * Background probes (§1.5): every interval, probe every service concurrently, each bounded by the
 * timeout, and record the informational `health_status`. A round still running when the next is due
 * is not overlapped by another. Liveness (is_healthy) stays heartbeat-based and is not touched.
 */
export class HealthProber {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: ServiceStore,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.round().finally(() => (this.running = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  async probeOne(rec: ServiceRecord): Promise<ServiceRecord | undefined> {
    const result = await probe(probeUrl(rec), this.timeoutMs);
    if (result !== rec.health_status) this.log.debug({ service: rec.name, health_status: result }, 'health status changed');
    return this.store.update(rec.name, { health_status: result }, { heartbeat: false });
  }

  private async round(): Promise<void> {
    const { services } = await this.store.list();
    await Promise.all(services.map((rec) => this.probeOne(rec)));
  }
}
