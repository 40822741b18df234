/**
 * The last few failed requests, for the dashboard's "recent errors" list: a fixed ring, so that a
 * storm of errors costs the same memory as a quiet day and adding one is a few stores.
 */

/** One failed request as the dashboard lists it. */
export interface RecentError {
  /** When it ended, ms since the epoch. */
  time: number;
  requestId: string;
  /** The requested model ('' when the request named none). */
  model: string;
  /** The backend that answered last ('' when the router answered itself). */
  backend: string;
  /** The status the client got; 0 when it got none (gone first, or cut mid-answer). */
  status: number;
  /** Why it ended: `upstream error`, `timeout`, `client gone`, `no backend`, ... */
  reason: string;
}

export const RECENT_ERRORS = 50;
/** Longest id, model, backend or reason kept (a client picks its request id and model name). */
const MAX_FIELD = 200;

/** Whether a finished request belongs in the list: any 4xx/5xx, no status at all, or an end other than `completed`. */
export function isErrorOutcome(status: number, reason: string): boolean {
  return status >= 400 || status === 0 || reason !== 'completed';
}

const clip = (s: string) => (s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s);

export class RecentErrors {
  private readonly ring: Array<RecentError | undefined>;
  private next = 0;
  /** Errors added since the router started (the ring keeps the last `capacity`). */
  total = 0;

  constructor(readonly capacity = RECENT_ERRORS) {
    this.ring = new Array<RecentError | undefined>(capacity);
  }

  /** Records a failed request (the caller decides what failed; isErrorOutcome is the usual test). */
  add(e: RecentError): void {
    this.ring[this.next] = { time: e.time, requestId: clip(e.requestId), model: clip(e.model), backend: clip(e.backend), status: e.status, reason: clip(e.reason) };
    this.next = (this.next + 1) % this.capacity;
    this.total++;
  }

  /** Newest first. */
  list(): RecentError[] {
    const out: RecentError[] = [];
    for (let i = 1; i <= this.capacity; i++) {
      const e = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (e === undefined) break;
      out.push(e);
    }
    return out;
  }
}
