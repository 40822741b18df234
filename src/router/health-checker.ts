import { checkHttp, is2xx, type CheckStatus } from '../common/http-probe.js';
import type { Logger } from '../common/log.js';
import { ProbeScheduler, type ProbeOutcome, type ProbeStats } from '../common/probe-scheduler.js';
import type { Backend } from './backend.js';
import { probeBackends, type BackendSet } from './backend-set.js';
import { CHECK_RESULTS } from './traffic-stats.js';

const OK = CHECK_RESULTS.indexOf('ok');
const NOT_READY = CHECK_RESULTS.indexOf('not_ready');
const UNANSWERED = CHECK_RESULTS.indexOf('unanswered');
const INCONCLUSIVE = CHECK_RESULTS.indexOf('inconclusive');

/** Rechecks of a failing backend: after 1 s, doubling per further failure, at most every 5 s. */
const RECHECK_FIRST_MS = 1_000;
const RECHECK_MAX_MS = 5_000;
/** Conclusive health checks in a row that time out (or fail without an HTTP answer) before a backend counts as dead. */
const DEAD_AFTER_UNANSWERED = 3;

/**
 * The router's own check of each backend: the babysitter's `/health` at port+1 (200 ready, 503 not
 * ready); only when nothing listens there, the backend's own `/health`, then its models list.
 * A passing check ends an ejection early.
 *
 * A backend is checked as soon as it joins (all of them at start-up), then once per interval at its
 * own phase of it, at most `concurrency` checks at once (see ProbeScheduler). A failing backend is
 * checked again after 1 s, 2 s, 4 s, then every 5 s (the interval, if shorter), so one that was
 * still starting when the router came up, or was briefly not ready, is back within seconds instead
 * of a whole interval (30 s by default) later. A check whose timeout fired late because the router
 * itself was busy is inconclusive: it changes nothing and is repeated soon.
 */
export class HealthChecker {
  private readonly scheduler: ProbeScheduler<Backend>;

  constructor(
    private readonly backends: BackendSet,
    intervalMs: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
    concurrency: number,
  ) {
    const cap = Math.min(RECHECK_MAX_MS, intervalMs);
    this.scheduler = new ProbeScheduler<Backend>({
      intervalMs,
      concurrency,
      first: 'now',
      failedRetryMs: (n) => Math.min(RECHECK_FIRST_MS * 2 ** Math.min(n - 1, 16), cap),
      inconclusiveRetryMs: Math.min(RECHECK_FIRST_MS, intervalMs),
      probe: (b) => this.probe(b),
      onError: (err, name) => log.error({ err, backend: name }, 'backend check failed unexpectedly'),
    });
    this.start = probeBackends(backends, this.scheduler);
  }

  /** Starts probing (every backend known by then, and each that joins). */
  readonly start: () => void;

  stop(): Promise<void> {
    return this.scheduler.stop();
  }

  stats(): ProbeStats {
    return this.scheduler.stats();
  }

  private refused(b: Backend, why: string): ProbeOutcome {
    if (this.backends.get(b.name) !== b) return 'gone';
    if (b.checkOk) this.log.warn({ backend: b.name, url: b.url, reason: why }, 'backend check fails: address refused by the network policy');
    b.checkOk = false;
    b.errorCount++;
    b.traffic.checks[NOT_READY]!++;
    return 'failed';
  }

  private async probe(b: Backend): Promise<ProbeOutcome> {
    if (this.backends.get(b.name) !== b) return 'gone';
    const started = performance.now();
    // an address the guard refuses is never probed (the probe would be the request the guard stops)
    const refusal = await b.pool.addressRefusal();
    if (refusal) return this.refused(b, refusal.message);
    let status: CheckStatus = await checkHttp(`${b.babysitterUrl}/health`, this.timeoutMs, b.probeGuard);
    if (status === 'refused') {
      // nothing listens at port+1: no babysitter, so ask the backend itself
      const base = b.url.replace(/\/+$/, '');
      status = await checkHttp(`${base}/health`, this.timeoutMs, b.probeGuard);
      if (!is2xx(status) && status !== 'inconclusive') status = await checkHttp(`${base}/v1/models`, this.timeoutMs, b.probeGuard);
    }
    if (status === 'inconclusive') {
      b.traffic.checks[INCONCLUSIVE]!++;
      this.log.debug({ backend: b.name, timeout_ms: this.timeoutMs }, 'backend check inconclusive (the router was too busy to time it); checking again soon');
      return 'inconclusive';
    }
    if (this.backends.get(b.name) !== b) return 'gone';
    const ok = is2xx(status);
    b.checkSeconds = (performance.now() - started) / 1000;
    if (ok !== b.checkOk) this.log.info({ backend: b.name, ok, status }, ok ? 'backend check passes' : 'backend check fails');
    b.checkOk = ok;
    if (ok && b.ejectedUntil > 0) b.endEjection();
    if (!ok) b.errorCount++;
    // No HTTP answer at all, from the babysitter nor the backend: dead, not merely "not ready"
    // (503). Nothing listening is certain at once; a timeout may be a blip, so only a run of them.
    b.unansweredChecks = typeof status === 'number' ? 0 : b.unansweredChecks + 1;
    b.traffic.checks[ok ? OK : typeof status === 'number' ? NOT_READY : UNANSWERED]!++;
    const dead = status === 'refused' || b.unansweredChecks >= DEAD_AFTER_UNANSWERED;
    if (dead) this.backends.declareDown(b, status === 'refused' ? 'nothing listens' : `no answer to ${b.unansweredChecks} health checks`);
    return ok ? 'ok' : 'failed';
  }
}
