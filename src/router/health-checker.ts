import { is2xx, probeStatus } from '../common/http-probe.js';
import type { Logger } from '../common/log.js';
import type { Backend } from './backend.js';
import type { BackendSet } from './backend-set.js';
import { PeriodicTask } from '../common/periodic.js';

/**
 * The router's own check of each backend: the babysitter's `/health` at port+1 (200 ready, 503 not
 * ready); only when nothing listens there, the backend's own `/health`, then its models list.
 * A passing check ends an ejection early. Rounds never overlap.
 */
export class HealthChecker {
  private readonly task: PeriodicTask;

  constructor(
    private readonly backends: BackendSet,
    intervalMs: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    this.task = new PeriodicTask(() => this.round(), intervalMs);
  }

  start(): void {
    this.task.start({ immediately: true });
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  round(): Promise<void> {
    return Promise.all(this.backends.all.map((b) => this.check(b))).then(() => undefined);
  }

  async check(b: Backend): Promise<boolean> {
    const started = performance.now();
    let status = await probeStatus(`${b.babysitterUrl}/health`, this.timeoutMs);
    if (status === 'refused') {
      // nothing listens at port+1: no babysitter, so ask the backend itself
      const base = b.url.replace(/\/+$/, '');
      status = await probeStatus(`${base}/health`, this.timeoutMs);
      if (!is2xx(status)) status = await probeStatus(`${base}/v1/models`, this.timeoutMs);
    }
    const ok = is2xx(status);
    b.checkSeconds = (performance.now() - started) / 1000;
    if (ok !== b.checkOk) this.log.info({ backend: b.name, ok }, ok ? 'backend check passes' : 'backend check fails');
    b.checkOk = ok;
    if (ok && b.ejectedUntil > 0) b.endEjection();
    if (!ok) b.errorCount++;
    return ok;
  }
}
