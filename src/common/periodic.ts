/**
 * Runs an async task every `intervalMs`, never two at once: a round still running when the next
 * is due makes that tick a no-op (the original spawned overlapping tasks). The timer does not keep
 * the process alive; `stop()` waits for a running round.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly task: () => Promise<unknown>,
    private readonly intervalMs: number,
  ) {}

  start(opts: { immediately?: boolean } = {}): void {
    if (this.timer) return;
    if (opts.immediately) this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.task()
      .then(() => undefined, () => undefined)
      .finally(() => (this.running = undefined));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
