import type { Logger } from '../common/log.js';
import type { Backend } from './backend.js';
import type { BackendSet } from './backend-set.js';

type CheckResult = 'ok' | 'fail' | 'nothing-listens';

async function get(url: string, timeoutMs: number): Promise<CheckResult> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel().catch(() => undefined);
    return res.ok ? 'ok' : 'fail';
  } catch (err) {
    const code = ((err as { cause?: { code?: string } }).cause?.code ?? '') as string;
    return code === 'ECONNREFUSED' ? 'nothing-listens' : 'fail';
  }
}

/**
 * The router's own check of each backend: the babysitter's `/health` at port+1 (200 ready, 503 not
 * ready); only when nothing listens there, the backend's own `/health`, then its models list.
 * A passing check ends an ejection early. Rounds never overlap.
 */
export class HealthChecker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly backends: BackendSet,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    const tick = () => {
      if (!this.running) this.running = this.round().finally(() => (this.running = undefined));
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  round(): Promise<void> {
    return Promise.all(this.backends.all.map((b) => this.check(b))).then(() => undefined);
  }

  async check(b: Backend): Promise<boolean> {
    const started = performance.now();
    let result = await get(`${b.babysitterUrl}/health`, this.timeoutMs);
    if (result === 'nothing-listens') {
      const base = b.url.replace(/\/+$/, '');
      result = await get(`${base}/health`, this.timeoutMs);
      if (result !== 'ok') result = await get(`${base}/v1/models`, this.timeoutMs);
    }
    const ok = result === 'ok';
    b.checkSeconds = (performance.now() - started) / 1000;
    if (ok !== b.checkOk) this.log.info({ backend: b.name, ok }, ok ? 'backend check passes' : 'backend check fails');
    b.checkOk = ok;
    if (ok && b.ejectedUntil > 0) b.endEjection();
    if (!ok) b.errorCount++;
    return ok;
  }
}
