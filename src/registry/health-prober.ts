import { is2xx, probeStatus } from '../common/http-probe.js';
import type { Logger } from '../common/log.js';
import { probeUrl, type ServiceRecord } from './record.js';
import type { ServiceStore } from './store.js';
import { PeriodicTask } from '../common/periodic.js';

/**
 * Background probes (§1.5): every interval, probe every service concurrently, each bounded by the
 * timeout, and record the informational `health_status`. A round still running when the next is due
 * is not overlapped by another. Liveness (is_healthy) stays heartbeat-based and is not touched.
 */
export class HealthProber {
  private readonly task: PeriodicTask;

  constructor(
    private readonly store: ServiceStore,
    intervalMs: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    this.task = new PeriodicTask('service health probes', () => this.round(), intervalMs, log);
  }

  start(): void {
    this.task.start();
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  async probeOne(rec: ServiceRecord): Promise<ServiceRecord | undefined> {
    const result = is2xx(await probeStatus(probeUrl(rec), this.timeoutMs)) ? 'healthy' : 'unhealthy';
    if (result !== rec.health_status) this.log.debug({ service: rec.name, health_status: result }, 'health status changed');
    return this.store.update(rec.name, { health_status: result }, { heartbeat: false });
  }

  private async round(): Promise<void> {
    const { services } = await this.store.list();
    const results = await Promise.allSettled(services.map((rec) => this.probeOne(rec)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) this.log.warn({ err: String(failed.reason) }, 'could not record probe results; retrying next round');
  }
}
