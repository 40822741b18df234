import type { IncomingMessage } from 'node:http';
import type { AddressGuard } from '../common/address-guard.js';
import { ClientBuckets } from '../common/client-buckets.js';

/** Clients (addresses) whose request rate is remembered at once; the least recently seen go first. */
const MAX_CLIENTS = 16_384;

export interface AdmissionOptions {
  /** Which service addresses may be registered. */
  guard: AddressGuard;
  /** Records in all; a registration of a new name beyond it is refused (429). */
  maxServices: number;
  /** Requests per second per client address (0: no limit), heartbeats apart. */
  rateLimit: number;
  /** Heartbeats per second per client address (0: no limit): their own budget, so that a flood of other calls never starves them. */
  heartbeatRateLimit: number;
  /** Requests a client may send at once above its rate (per budget). */
  burst: number;
  now?: () => number;
}

/** Whether a request may go on: undefined, or the 429's message and Retry-After seconds. */
export interface Throttled {
  message: string;
  retryAfterS: number;
}

/**
 * The registry's defences against floods and against records that point where no inference server
 * is: the address guard for registrations, the cap on records, and rate limits per client address.
 */
export class Admission {
  readonly guard: AddressGuard;
  readonly maxServices: number;
  /** Refusals by reason, for /metrics. */
  readonly refused = { rate_limit: 0, heartbeat_rate_limit: 0, max_services: 0, address: 0 };
  private readonly calls: ClientBuckets | undefined;
  private readonly beats: ClientBuckets | undefined;

  constructor(private readonly opts: AdmissionOptions) {
    this.guard = opts.guard;
    this.maxServices = opts.maxServices;
    const buckets = (ratePerS: number) => (ratePerS > 0 ? new ClientBuckets({ ratePerS, burst: opts.burst, maxClients: MAX_CLIENTS, now: opts.now }) : undefined);
    this.calls = buckets(opts.rateLimit);
    this.beats = buckets(opts.heartbeatRateLimit);
  }

  /** Clients remembered by each budget (bounded by MAX_CLIENTS). */
  get clients(): { calls: number; heartbeats: number } {
    return { calls: this.calls?.size ?? 0, heartbeats: this.beats?.size ?? 0 };
  }

  /** Charges one request of `req`'s client to its budget; /health is never limited. */
  charge(req: IncomingMessage, heartbeat: boolean): Throttled | undefined {
    const buckets = heartbeat ? this.beats : this.calls;
    if (buckets === undefined) return undefined;
    const client = req.socket.remoteAddress ?? '';
    const wait = buckets.take(client);
    if (wait === 0) return undefined;
    this.refused[heartbeat ? 'heartbeat_rate_limit' : 'rate_limit']++;
    const [flag, rate] = heartbeat ? ['--heartbeat-rate-limit', this.opts.heartbeatRateLimit] : ['--rate-limit', this.opts.rateLimit];
    return { message: `too many requests from ${client}: over ${rate} per second (${flag}, burst ${this.opts.burst}); retry after ${wait} s`, retryAfterS: wait };
  }
}
