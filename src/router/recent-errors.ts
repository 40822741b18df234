import type { RequestRecord } from './request-log.js';

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
  /** Why it ended (the request log's `end`): `upstream_error`, `timeout`, `client_gone`, `no_backend`. */
  reason: string;
}

export const RECENT_ERRORS = 50;
/** Longest id, model, backend or reason kept (a client picks its request id and model name). */
const MAX_FIELD = 200;

const clip = (s: string) => (s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s);

export class RecentErrors {
  private readonly ring: Array<RecentError | undefined>;
  private next = 0;
  /** Errors added since the router started (the ring keeps the last `capacity`). */
  total = 0;

  constructor(readonly capacity = RECENT_ERRORS) {
    this.ring = new Array<RecentError | undefined>(capacity);
  }

  /** The request forwarder's onFailedRequest: it calls this for a request that ended with a 5xx or did not complete (a key refused is not the cluster failing). */
  readonly onFailedRequest = (r: RequestRecord): void => {
    this.add({ time: Date.now(), requestId: r.requestId, model: r.model ?? '', backend: r.backend ?? '', status: r.status, reason: r.end });
  };

  /** Records a failed request (the caller decides what failed). */
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
