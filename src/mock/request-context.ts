import type { Http1Response } from '../common/http1/response.js';

/**
 * Per-request cancellation without an AbortController: a client disconnect clears the pending
 * timer and wakes the waiting step, which then sees `cancelled` and stops its simulated work.
 */
export class RequestContext {
  cancelled = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  /** Extra clean-up to run on cancellation (e.g. leave the batch queue). */
  onCancel: (() => void) | undefined;

  constructor(res: Http1Response, onDisconnect: () => void) {
    res.onClose = () => {
      this.cancelled = true;
      onDisconnect();
      clearTimeout(this.timer);
      this.onCancel?.();
      this.wake?.();
    };
  }

  /** Waits `ms` (or until cancelled). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}
