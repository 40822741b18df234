/**
 * Limited concurrency like an engine's batch: at most `maxRunning` requests decode at once; the
 * rest wait in FIFO order. The fast path (a free slot) involves no promise or timer.
 */
export class BatchScheduler {
  running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(readonly maxRunning: number) {}

  get waiting(): number {
    return this.queue.length;
  }

  tryAcquire(): boolean {
    if (this.running < this.maxRunning && this.queue.length === 0) {
      this.running++;
      return true;
    }
    return false;
  }

  /** Queues `start`, called (with the slot already taken) when a slot frees up. */
  enqueue(start: () => void): () => void {
    this.queue.push(start);
    return start;
  }

  /** Removes a waiter that gave up (client disconnected). */
  remove(waiter: () => void): boolean {
    const i = this.queue.indexOf(waiter);
    if (i === -1) return false;
    this.queue.splice(i, 1);
    return true;
  }

  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.running--;
  }
}
