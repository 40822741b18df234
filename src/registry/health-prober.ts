import type { ProbeGuard } from '../common/guarded-lookup.js';
import { checkHttp, is2xx } from '../common/http-probe.js';
import type { Logger } from '../common/log.js';
import { ProbeScheduler, type ProbeOutcome, type ProbeStats } from '../common/probe-scheduler.js';
import { probeUrl, type ServiceRecord } from './record.js';
import type { ServiceStore } from './store.js';

/** An inconclusive probe (this process too busy to tell) is retried after about this long. */
const INCONCLUSIVE_RETRY_MS = 1_000;

/**
 * Background probes (§1.5) recording the informational `health_status`; liveness (is_healthy)
 * stays heartbeat-based and is not touched. Each service is probed once per interval at its own
 * phase of it (a new registration within one interval, as the rounds did), at most `concurrency`
 * at once (see ProbeScheduler). A probe whose timeout fired late because the registry itself was
 * busy changes nothing and is retried soon.
 */
export class HealthProber {
  private readonly scheduler: ProbeScheduler<string>;
  private unwatch: (() => void) | undefined;
  private lastWriteWarningMs = -Infinity;

  constructor(
    private readonly store: ServiceStore,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
    concurrency: number,
    /** Keeps probes (and their redirects) to the addresses registrations may have. */
    private readonly guard?: ProbeGuard,
  ) {
    this.scheduler = new ProbeScheduler<string>({
      intervalMs,
      concurrency,
      first: 'slot',
      inconclusiveRetryMs: Math.min(INCONCLUSIVE_RETRY_MS, intervalMs),
      probe: (name) => this.probeByName(name),
      onError: (err, name) => log.error({ err, service: name }, 'health probe failed unexpectedly'),
    });
  }

  /** Follows the store's changes (registrations in, deregistrations out), then probes everything it holds. */
  async start(): Promise<void> {
    if (this.unwatch) return;
    // subscribe before listing: a change in between is seen twice at worst (adding is idempotent)
    this.unwatch = this.store.watch(undefined, (e) => {
      if (e.type === 'delete') this.scheduler.remove(e.service.name);
      else if (e.type === 'put') this.scheduler.add(e.service.name, e.service.name);
    }).unsubscribe;
    for (const rec of (await this.store.list()).services) this.scheduler.add(rec.name, rec.name);
    this.scheduler.start();
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    this.unwatch = undefined;
    await this.scheduler.stop();
  }

  stats(): ProbeStats {
    return this.scheduler.stats();
  }

  /** Probes one service now and records the result (the on-demand GET /services/{name}/health). */
  async probeOne(rec: ServiceRecord): Promise<ServiceRecord | undefined> {
    const status = await checkHttp(probeUrl(rec), this.timeoutMs, this.guard);
    if (status === 'inconclusive') return rec;
    return this.record(rec, is2xx(status) ? 'healthy' : 'unhealthy');
  }

  private async probeByName(name: string): Promise<ProbeOutcome> {
    const rec = await this.store.get(name);
    if (!rec) return 'gone';
    const status = await checkHttp(probeUrl(rec), this.timeoutMs, this.guard);
    if (status === 'inconclusive') {
      this.log.debug({ service: name, timeout_ms: this.timeoutMs }, 'health probe inconclusive (the registry was too busy to time it); retrying soon');
      return 'inconclusive';
    }
    const ok = is2xx(status);
    const current = await this.store.get(name);
    if (!current) return 'gone';
    try {
      // most probes confirm what is recorded: no update to queue then
      if (current.health_status !== (ok ? 'healthy' : 'unhealthy')) await this.record(current, ok ? 'healthy' : 'unhealthy');
    } catch (err) {
      // a state file that cannot be written: say so once per interval, not once per service
      const now = performance.now();
      if (now - this.lastWriteWarningMs >= this.intervalMs) {
        this.lastWriteWarningMs = now;
        this.log.warn({ err: String(err) }, 'could not record probe results; retrying next round');
      }
    }
    return ok ? 'ok' : 'failed';
  }

  private record(rec: ServiceRecord, result: 'healthy' | 'unhealthy'): Promise<ServiceRecord | undefined> {
    if (result !== rec.health_status) this.log.debug({ service: rec.name, health_status: result }, 'health status changed');
    return this.store.update(rec.name, { health_status: result }, { heartbeat: false });
  }
}
