import type { AddressGuard } from '../../common/address-guard.js';
import { SlotList } from '../../common/slot-list.js';
import { addressPolicy, resolveRefusal, type AddressRefusedError } from './address-policy.js';
import { Phase, UpstreamConnection, UpstreamError, type ConnectionOwner, type Endpoint, type UpstreamHandler } from './connection.js';

export interface UpstreamPoolOptions {
  connectTimeoutMs: number;
  /** Longest wait for the response head once the request is sent. */
  headersTimeoutMs: number;
  /** Longest silence between body reads (not counted while the client holds us back). */
  idleTimeoutMs: number;
  /** How long an unused connection is kept open. */
  keepAliveMs: number;
  /** Connect only to addresses this allows (none: any). */
  guard?: AddressGuard;
}

/**
 * Keep-alive HTTP/1.1 connections to one backend (no limit on their number, one request at a time
 * each). Idle connections are reused last-in first-out so that surplus ones age out. One timer per
 * pool enforces every timeout: reads only set a flag, the sweep turns flags into timestamps.
 */
export class UpstreamPool implements ConnectionOwner {
  private readonly idle: UpstreamConnection[] = [];
  private readonly busy = new SlotList<UpstreamConnection>();
  private readonly sweeper: NodeJS.Timeout;
  private closing = false;
  private onDrained: (() => void) | undefined;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly opts: UpstreamPoolOptions,
  ) {
    const shortest = Math.min(opts.connectTimeoutMs, opts.headersTimeoutMs, opts.idleTimeoutMs, opts.keepAliveMs);
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, Math.floor(shortest / 4))));
    this.sweeper.unref();
  }

  /** From a URL's origin: http or https, default ports. */
  static forOrigin(origin: URL, opts: UpstreamPoolOptions): UpstreamPool {
    const tls = origin.protocol === 'https:';
    const host = origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname;
    const address = opts.guard ? addressPolicy(opts.guard, host) : undefined;
    return new UpstreamPool({ host, port: Number(origin.port) || (tls ? 443 : 80), tls, address }, opts);
  }

  /** Whether the guard refuses this backend's address now (a name is resolved again), for health checks. */
  addressRefusal(): Promise<AddressRefusedError | undefined> {
    return resolveRefusal(this.endpoint.address, this.endpoint.host);
  }

  /** Connections open (busy and idle). */
  get size(): number {
    return this.busy.length + this.idle.length;
  }

  /**
   * Sends a request with `head` (request line and headers, ending in an empty line) and `body`.
   * The returned connection is the handle for abort/resume while `handler` is being served.
   */
  request(head: string, body: Buffer | undefined, headRequest: boolean, handler: UpstreamHandler): UpstreamConnection {
    let conn = this.idle.pop();
    if (conn === undefined || this.closing) conn = new UpstreamConnection(this, this.endpoint, this.opts.keepAliveMs);
    this.busy.add(conn);
    conn.start(head, body, headRequest, handler);
    return conn;
  }

  released(conn: UpstreamConnection, reusable: boolean): void {
    this.busy.remove(conn);
    if (reusable && !this.closing) {
      conn.phaseStart = Date.now();
      this.idle.push(conn);
    } else conn.destroy();
    this.checkDrained();
  }

  closed(conn: UpstreamConnection): void {
    if (!this.busy.remove(conn)) {
      const i = this.idle.indexOf(conn);
      if (i !== -1) this.idle.splice(i, 1);
    }
    this.checkDrained();
  }

  private sweep(): void {
    const now = Date.now();
    const { connectTimeoutMs, headersTimeoutMs, idleTimeoutMs } = this.opts;
    this.busy.forEachBackwards((conn) => {
      const waited = now - conn.phaseStart;
      switch (conn.phase) {
        case Phase.Connect:
          if (waited > connectTimeoutMs) conn.fail(new UpstreamError('UPSTREAM_CONNECT_TIMEOUT', `connect timeout after ${connectTimeoutMs} ms`));
          break;
        case Phase.Head:
          if (waited > headersTimeoutMs) conn.fail(new UpstreamError('UPSTREAM_HEADERS_TIMEOUT', `no response head within ${headersTimeoutMs} ms`));
          break;
        case Phase.Body:
          if (conn.touched || conn.paused) {
            conn.touched = false;
            conn.phaseStart = now;
          } else if (waited > idleTimeoutMs) conn.fail(new UpstreamError('UPSTREAM_BODY_TIMEOUT', `no response data for ${idleTimeoutMs} ms`));
          break;
        default:
          break;
      }
    });
    // oldest idle connections first
    while (this.idle.length > 0 && now - this.idle[0]!.phaseStart > this.idle[0]!.keepAliveMs) this.idle.shift()!.destroy();
  }

  private checkDrained(): void {
    if (this.closing && this.busy.length === 0 && this.onDrained) this.onDrained();
  }

  /** Closes idle connections now and the rest once their requests finish. */
  async close(): Promise<void> {
    this.closing = true;
    for (const conn of this.idle.splice(0)) conn.destroy();
    if (this.busy.length > 0) await new Promise<void>((resolve) => (this.onDrained = resolve));
    clearInterval(this.sweeper);
  }

  /** Cuts everything at once. */
  destroy(): void {
    this.closing = true;
    for (const conn of [...this.idle.splice(0), ...this.busy.items]) conn.destroy();
    clearInterval(this.sweeper);
  }
}
