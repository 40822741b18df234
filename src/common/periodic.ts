import type { Logger } from './log.js';

/**
 * Runs an async task every `intervalMs`, never two at once: a round still running when the next
 * is due makes that tick a no-op (the original spawned overlapping tasks). The timer does not keep
 * the process alive; `stop()` waits for a running round. A task handles the failures it expects;
 * anything it still throws or rejects with is logged under `what`, and the next tick runs it again.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly what: string,
    private readonly task: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(opts: { immediately?: boolean } = {}): void {
    if (this.timer) return;
    if (opts.immediately) this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  private tick(): void {
    if (this.running) return;
    // (a task that throws before its first await throws here: caught all the same)
    this.running = new Promise<unknown>((resolve) => resolve(this.task()))
      .then(
        () => undefined,
        (err: unknown) => this.log.error({ err, task: this.what }, 'periodic task failed; it runs again at the next interval'),
      )
      .finally(() => (this.running = undefined));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
