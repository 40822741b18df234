import { createServer, type Server, type Socket } from 'node:net';
import { ChunkedDecoder, ChunkedError } from './chunked.js';
import { parseRequestHead, RequestError, type RequestHead } from './request-head.js';
import { Http1Response, type ResponseOwner } from './response.js';

/** A complete request: head and the whole body (requests here are buffered before handling). */
export interface Http1Request extends RequestHead {
  body: Buffer | undefined;
  remoteAddress: string;
}

export type Http1Handler = (req: Http1Request, res: Http1Response) => void;

export interface Http1ServerOptions {
  /** Larger bodies get 413 (announced ones before they are sent). */
  maxBodyBytes: number;
  /** Request line and headers; larger heads get 431. */
  maxHeadBytes?: number;
  /** Time to receive a request head once it started. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request body. */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs?: number;
  /** The message of a 413 answer. */
  tooLargeMessage?: (limit: number) => string;
  /** The JSON body of the server's own error answers (400, 408, 413, 431, 501, 505). */
  errorBody?: (status: number, message: string) => string;
  /** Told about each of the server's own error answers (metrics). */
  onError?: (status: number) => void;
}

const enum State {
  /** Waiting for (or reading) a request head. */
  Head,
  Body,
  /** The handler has the request; its response is not finished. */
  Active,
  /** Closing: the last response is out, input is read and dropped until the client closes. */
  Closing,
}

/** Pipelined bytes buffered while a request is active, before reading pauses. */
const MAX_PENDING = 1024 * 1024;
/** After an error answer, how much more input is swallowed so the answer is not lost in a reset. */
const DRAIN_CAP = 16 * 1024 * 1024;
const CLOSING_GRACE_MS = 5000;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/**
 * A small HTTP/1.1 server on node:net for the hot path (router, mock): it parses requests itself,
 * buffers each body, and hands complete requests to the handler one at a time per connection
 * (pipelined requests wait their turn). Compared with node:http it allocates a few objects per
 * request instead of streams, events and header objects, which is most of a proxy's CPU time.
 * Timeouts use one sweep per second over all connections.
 */
export class Http1Server {
  readonly server: Server;
  private readonly connections = new Set<Connection>();
  private readonly sweeper: NodeJS.Timeout;
  closing = false;
  readonly opts: Required<Omit<Http1ServerOptions, 'onError'>> & Pick<Http1ServerOptions, 'onError'>;

  constructor(
    readonly handler: Http1Handler,
    options: Http1ServerOptions,
  ) {
    this.opts = {
      maxHeadBytes: 32 * 1024,
      headersTimeoutMs: 66_000,
      requestTimeoutMs: 300_000,
      keepAliveTimeoutMs: 65_000,
      tooLargeMessage: (limit) => `request body exceeds ${limit} bytes`,
      errorBody: (_status, message) => JSON.stringify({ error: message }),
      ...options,
    };
    this.server = createServer({ noDelay: true }, (socket) => this.connections.add(new Connection(this, socket)));
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  forget(conn: Connection): void {
    this.connections.delete(conn);
  }

  private sweep(): void {
    const now = Date.now();
    for (const conn of this.connections) conn.checkTimeouts(now);
  }

  /** Stops accepting, closes idle connections, lets active ones finish up to `drainMs`, then cuts the rest. */
  async close(drainMs: number): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of this.connections) conn.closeIfIdle();
    const timer = setTimeout(() => {
      for (const conn of this.connections) conn.socket.destroy();
    }, drainMs);
    await closed;
    clearTimeout(timer);
    clearInterval(this.sweeper);
  }
}

class Connection implements ResponseOwner {
  private state = State.Head;
  private pending: Buffer | undefined;
  private head: RequestHead | undefined;
  private body: Buffer[] = [];
  private bodyBytes = 0;
  private remaining = 0;
  private chunked: ChunkedDecoder | undefined;
  private res: Http1Response | undefined;
  /** Start of the current phase, for timeouts. */
  private since = Date.now();
  private processing = false;
  private dropped = 0;

  constructor(
    private readonly server: Http1Server,
    readonly socket: Socket,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => this.onClose());
  }

  get closing(): boolean {
    return this.server.closing;
  }

  private onData(chunk: Buffer): void {
    if (this.state === State.Closing) {
      this.dropped += chunk.length;
      if (this.dropped > DRAIN_CAP) this.socket.destroy();
      return;
    }
    if (this.pending === undefined) {
      if (this.state === State.Head) this.since = Date.now();
      this.pending = chunk;
    } else this.pending = Buffer.concat([this.pending, chunk]);
    if (this.state === State.Active) {
      if (this.pending.length > MAX_PENDING) this.socket.pause();
      return;
    }
    this.process();
  }

  /** Parses and dispatches as many requests as the buffered bytes hold, one at a time. */
  private process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.pending !== undefined && (this.state === State.Head || this.state === State.Body)) {
        if (this.state === State.Body) this.readBody();
        else if (!this.readHead()) break;
      }
    } catch (err) {
      if (err instanceof RequestError) this.refuse(err.status, err.message);
      else if (err instanceof ChunkedError) this.refuse(400, `malformed chunked body: ${err.message}`);
      else throw err;
    } finally {
      this.processing = false;
    }
  }

  private take(n: number): void {
    const p = this.pending!;
    this.pending = n >= p.length ? undefined : p.subarray(n);
  }

  /** False while the head is incomplete. */
  private readHead(): boolean {
    let p = this.pending!;
    // robustness (RFC 9112 §2.2): empty lines before a request line are ignored
    let skip = 0;
    while (skip < p.length && (p[skip] === 13 || p[skip] === 10)) skip++;
    if (skip > 0) {
      this.take(skip);
      if (this.pending === undefined) return false;
      p = this.pending;
    }
    const end = p.indexOf('\r\n\r\n', 0, 'latin1');
    const limit = this.server.opts.maxHeadBytes;
    if (end === -1 || end > limit) {
      if (end > limit || p.length > limit) throw new RequestError(431, `request head larger than ${limit} bytes`);
      return false; // wait for the rest of the head
    }
    const head = parseRequestHead(p.toString('latin1', 0, end));
    this.take(end + 4);
    this.head = head;
    const max = this.server.opts.maxBodyBytes;
    if (head.contentLength > max) {
      this.refuse(413, this.server.opts.tooLargeMessage(max));
      return true;
    }
    if (head.contentLength === 0) {
      this.dispatch(undefined);
      return true;
    }
    this.body = [];
    this.bodyBytes = 0;
    if (head.contentLength === -1) {
      this.chunked ??= new ChunkedDecoder((buf, start, stop) => {
        this.bodyBytes += stop - start;
        this.body.push(buf.subarray(start, stop));
      });
      this.chunked.reset();
    } else this.remaining = head.contentLength;
    this.state = State.Body;
    this.since = Date.now();
    const buffered = this.pending?.length ?? 0;
    if (head.expectContinue && (head.contentLength === -1 || buffered < head.contentLength)) this.socket.write(CONTINUE, 'latin1');
    return true;
  }

  private readBody(): void {
    const p = this.pending!;
    if (this.chunked !== undefined && this.head!.contentLength === -1) {
      const used = this.chunked.execute(p, 0, p.length);
      this.take(used);
      if (this.bodyBytes > this.server.opts.maxBodyBytes) return this.refuse(413, this.server.opts.tooLargeMessage(this.server.opts.maxBodyBytes));
      if (!this.chunked.done) return;
    } else {
      const n = Math.min(this.remaining, p.length);
      this.body.push(n === p.length ? p : p.subarray(0, n));
      this.bodyBytes += n;
      this.remaining -= n;
      this.take(n);
      if (this.remaining > 0) return;
    }
    const parts = this.body;
    this.body = [];
    this.dispatch(parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.bodyBytes));
  }

  private dispatch(body: Buffer | undefined): void {
    const head = this.head!;
    this.head = undefined;
    this.state = State.Active;
    const req = head as Http1Request;
    req.body = body;
    req.remoteAddress = this.socket.remoteAddress ?? '';
    const res = new Http1Response(this, this.socket, head.method === 'HEAD', head.keepAlive, head.httpVersionMinor === 0);
    this.res = res;
    try {
      this.server.handler(req, res);
    } catch (err) {
      // a handler bug must not take the process down: answer 500 (or cut) and carry on
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(this.server.opts.errorBody(500, `internal error: ${(err as Error).message}`));
      } else res.destroy();
    }
  }

  responseDone(res: Http1Response, keepAlive: boolean): void {
    if (res !== this.res) return;
    this.res = undefined;
    if (!keepAlive || this.server.closing) {
      this.startClosing();
      return;
    }
    this.state = State.Head;
    this.since = Date.now();
    if (this.socket.isPaused()) this.socket.resume();
    if (this.pending !== undefined && !this.processing) this.process();
  }

  /** An error answer of the server's own, then the connection closes. */
  private refuse(status: number, message: string): void {
    this.server.opts.onError?.(status);
    const body = this.server.opts.errorBody(status, message);
    const res = new Http1Response(this, this.socket, false, false, false);
    this.res = res;
    this.state = State.Active;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  /** Half-closes after the last response and drops further input until the client closes. */
  private startClosing(): void {
    this.state = State.Closing;
    this.pending = undefined;
    this.since = Date.now();
    if (this.socket.isPaused()) this.socket.resume();
    this.socket.end();
  }

  closeIfIdle(): void {
    if (this.state === State.Head && this.pending === undefined) this.socket.destroy();
  }

  checkTimeouts(now: number): void {
    const waited = now - this.since;
    const o = this.server.opts;
    switch (this.state) {
      case State.Head:
        if (this.pending !== undefined ? waited > o.headersTimeoutMs : waited > o.keepAliveTimeoutMs) {
          if (this.pending !== undefined) this.refuse(408, 'timed out waiting for the request head');
          else this.socket.destroy();
        }
        break;
      case State.Body:
        if (waited > o.requestTimeoutMs) this.refuse(408, 'timed out waiting for the request body');
        break;
      case State.Closing:
        if (waited > CLOSING_GRACE_MS) this.socket.destroy();
        break;
      default:
        break;
    }
  }

  /** The client's FIN: like node:http, a client that stops sending is treated as gone. */
  private onEnd(): void {
    if (this.state === State.Closing) this.socket.destroy();
    else if (this.res !== undefined) this.socket.destroy();
  }

  private onClose(): void {
    this.server.forget(this);
    const res = this.res;
    this.res = undefined;
    this.state = State.Closing;
    if (res !== undefined && !res.finished) res.onClose?.();
  }
}
