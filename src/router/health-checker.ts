import { is2xx, probeStatus } from '../common/http-probe.js';
import type { Logger } from '../common/log.js';
import type { Backend } from './backend.js';
import type { BackendSet } from './backend-set.js';
import { PeriodicTask } from '../common/periodic.js';

/** Rechecks of a failing backend: after 1 s, doubling per further failure, at most every 5 s. */
const RECHECK_FIRST_MS = 1_000;
const RECHECK_MAX_MS = 5_000;
/** Health checks in a row that time out (or fail without an HTTP answer) before a backend counts as dead. */
const DEAD_AFTER_UNANSWERED = 3;

/**
 * The router's own check of each backend: the babysitter's `/health` at port+1 (200 ready, 503 not
 * ready); only when nothing listens there, the backend's own `/health`, then its models list.
 * A passing check ends an ejection early. Rounds never overlap.
 *
 * A failing backend is checked again after 1 s, 2 s, 4 s, then every 5 s (the interval, if shorter),
 * so one that was still starting when the router came up, or was briefly not ready, is back within
 * seconds instead of a whole interval (30 s by default) later.
 */
export class HealthChecker {
  private readonly task: PeriodicTask;
  private readonly rechecks = new Map<Backend, { timer: NodeJS.Timeout; delayMs: number }>();
  private readonly checking = new Map<Backend, Promise<boolean>>();
  private stopped = false;

  constructor(
    private readonly backends: BackendSet,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    this.task = new PeriodicTask('backend health checks', () => this.round(), intervalMs, log);
  }

  start(): void {
    this.stopped = false;
    this.task.start({ immediately: true });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.rechecks.values()) clearTimeout(timer);
    this.rechecks.clear();
    await this.task.stop();
    await Promise.all(this.checking.values());
  }

  round(): Promise<void> {
    return Promise.all(this.backends.all.map((b) => this.check(b))).then(() => undefined);
  }

  /** Checks one backend; a check of the same backend already under way is shared, not repeated. */
  check(b: Backend): Promise<boolean> {
    let pending = this.checking.get(b);
    if (!pending) {
      pending = this.probe(b).finally(() => this.checking.delete(b));
      this.checking.set(b, pending);
      void pending.then((ok) => this.scheduleRecheck(b, ok));
    }
    return pending;
  }

  private scheduleRecheck(b: Backend, ok: boolean): void {
    const previous = this.rechecks.get(b);
    if (previous) clearTimeout(previous.timer);
    if (ok || this.stopped || this.backends.get(b.name) !== b) {
      this.rechecks.delete(b);
      return;
    }
    const cap = Math.min(RECHECK_MAX_MS, this.intervalMs);
    const delayMs = Math.min(previous ? previous.delayMs * 2 : RECHECK_FIRST_MS, cap);
    const timer = setTimeout(() => void this.check(b), delayMs);
    timer.unref();
    this.rechecks.set(b, { timer, delayMs });
  }

  private async probe(b: Backend): Promise<boolean> {
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
    if (ok !== b.checkOk) this.log.info({ backend: b.name, ok, status }, ok ? 'backend check passes' : 'backend check fails');
    b.checkOk = ok;
    if (ok && b.ejectedUntil > 0) b.endEjection();
    if (!ok) b.errorCount++;
    // No HTTP answer at all, from the babysitter nor the backend: dead, not merely "not ready"
    // (503). Nothing listening is certain at once; a timeout may be a blip, so only a run of them.
    b.unansweredChecks = typeof status === 'number' ? 0 : b.unansweredChecks + 1;
    const dead = status === 'refused' || b.unansweredChecks >= DEAD_AFTER_UNANSWERED;
    if (dead && this.backends.get(b.name) === b) this.backends.declareDown(b, status === 'refused' ? 'nothing listens' : `no answer to ${b.unansweredChecks} health checks`);
    return ok;
  }
}
