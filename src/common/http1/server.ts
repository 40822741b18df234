import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { BodyBuffer, HeadBuffer, type BodyBudget } from './buffers.js';
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
  /**
   * Body bytes buffered for all connections together. Beyond it a connection whose body needs
   * more waits (it is not read) until another request's body is released; one body alone may
   * always be received, so a limit below `maxBodyBytes` cannot stall a single large request.
   */
  maxBufferedBytes?: number;
  /** Request line and headers; larger heads get 431. */
  maxHeadBytes?: number;
  /** Time to receive a request head once its first byte arrived. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request body. */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs?: number;
  /** The message of a 413 answer. */
  tooLargeMessage?: (limit: number) => string;
  /** The JSON body of the server's own error answers (400, 408, 413, 417, 431, 501, 505). */
  errorBody?: (status: number, message: string) => string;
  /** Told about each of the server's own error answers (metrics). */
  onError?: (status: number) => void;
  /**
   * Serve HTTPS: a tls.Server whose established connections go to the same code as plain ones
   * (certificate and key, see tls-files.ts). Reload with `server.setSecureContext`.
   */
  tls?: TlsOptions;
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

/** Input held while a request is active (pipelined requests), before reading pauses. */
const MAX_HELD = 64 * 1024;
/** After an error answer, how much more input is swallowed so the answer is not lost in a reset. */
const DRAIN_CAP = 16 * 1024 * 1024;
const CLOSING_GRACE_MS = 5000;
/**
 * Chunk framing (size lines, extensions, CRLFs, trailers) may add at most this much to a chunked
 * body's size on the wire, plus the size of the body itself: `1\r\nx\r\n` repeated costs five
 * bytes of framing per byte of body and is refused long before the body limit's worth of wire.
 */
const CHUNK_FRAMING_ALLOWANCE = 64 * 1024;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const TERMINATOR = [13, 10, 13, 10];
const TERMINATOR_BYTES = Buffer.from(TERMINATOR);

/**
 * A small HTTP/1.1 server on node:net for the hot path (router, mock): it parses requests itself,
 * buffers each body, and hands complete requests to the handler one at a time per connection
 * (pipelined requests wait their turn, and wait for the client to read the previous answer).
 * Compared with node:http it allocates a few objects per request instead of streams, events and
 * header objects, which is most of a proxy's CPU time. Timeouts use one sweep per second.
 */
export class Http1Server implements BodyBudget {
  readonly server: Server;
  private readonly connections = new Set<Connection>();
  /** TLS: TCP connections whose handshake is not done (no request can be under way on them). */
  private readonly handshaking = new Set<Socket>();
  private handshakesKnown = true;
  private readonly sweeper: NodeJS.Timeout;
  closing = false;
  readonly opts: Required<Omit<Http1ServerOptions, 'onError' | 'tls'>> & Pick<Http1ServerOptions, 'onError'>;
  /** Body bytes reserved by all connections. */
  buffered = 0;
  /** Connections waiting for body budget, in arrival order. */
  private readonly waiting: Connection[] = [];

  constructor(
    readonly handler: Http1Handler,
    options: Http1ServerOptions,
  ) {
    const { tls, ...rest } = options;
    this.opts = {
      maxBufferedBytes: 1024 ** 3,
      maxHeadBytes: 32 * 1024,
      headersTimeoutMs: 66_000,
      requestTimeoutMs: 300_000,
      keepAliveTimeoutMs: 65_000,
      tooLargeMessage: (limit) => `request body exceeds ${limit} bytes`,
      errorBody: (_status, message) => JSON.stringify({ error: message }),
      ...rest,
    };
    const accept = (socket: Socket) => this.connections.add(new Connection(this, socket));
    if (tls) {
      // 'secureConnection' sockets, once their handshake is done (one that never ends is cut by
      // handshakeTimeout); until then only the TCP socket under it is known, kept for close()
      this.server = createTlsServer({ noDelay: true, handshakeTimeout: this.opts.headersTimeoutMs, ...tls }, (socket) => {
        // the TLS socket's TCP socket (Node's _parent); were it ever missing, nothing is cut at close
        const raw = (socket as Socket & { _parent?: Socket })._parent;
        if (raw === undefined) this.handshakesKnown = false;
        else this.handshaking.delete(raw);
        accept(socket);
      });
      this.server.on('connection', (raw: Socket) => {
        this.handshaking.add(raw);
        raw.once('close', () => this.handshaking.delete(raw));
      });
    } else this.server = createServer({ noDelay: true }, accept);
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  take(n: number, held: number): boolean {
    if (this.buffered + n > this.opts.maxBufferedBytes && this.buffered > held) return false;
    this.buffered += n;
    return true;
  }

  give(n: number): void {
    this.buffered -= n;
    while (this.waiting.length > 0 && this.buffered < this.opts.maxBufferedBytes) this.waiting.shift()!.retry();
  }

  /** `conn` resumes (retry) once budget is given back. */
  wait(conn: Connection): void {
    this.waiting.push(conn);
  }

  forget(conn: Connection): void {
    this.connections.delete(conn);
    const i = this.waiting.indexOf(conn);
    if (i !== -1) this.waiting.splice(i, 1);
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
    if (this.handshakesKnown) for (const raw of this.handshaking) raw.destroy();
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
  /** The head being received (copied: reads may be a byte each). */
  private readonly headBuf = new HeadBuffer();
  /** Input that is not this request's: the next pipelined ones, kept until their turn. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private head: RequestHead | undefined;
  private body: BodyBuffer | undefined;
  /** A body that arrived whole in one read: a view of it, not a copy. */
  private bodyView: Buffer | undefined;
  private bodyReserved = 0;
  private remaining = 0;
  private chunked: ChunkedDecoder | undefined;
  private chunkedWire = 0;
  private tooLarge = false;
  private res: Http1Response | undefined;
  /** Since when the connection is idle between requests (keep-alive timeout). */
  private idleSince = Date.now();
  /** When the current head's first byte arrived (headers timeout); empty lines before it do not count. */
  private headSince = 0;
  private bodySince = 0;
  /** Paused until the client reads what was written, or until body budget is free. */
  private waitingDrain = false;
  private waitingBudget = false;
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
    if (this.state === State.Active || this.waitingDrain || this.waitingBudget) return this.hold(chunk);
    this.feed(chunk);
  }

  /** Keeps input for later; past MAX_HELD the socket is not read until it is used. */
  private hold(chunk: Buffer): void {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > MAX_HELD) this.socket.pause();
  }

  /** Parses `chunk` as far as the state allows (heads, bodies, dispatches); holds the rest. */
  private feed(chunk: Buffer): void {
    let pos = 0;
    try {
      while (pos < chunk.length) {
        if (this.state === State.Head && !this.waitingDrain) pos = this.readHead(chunk, pos);
        else if (this.state === State.Body && !this.waitingBudget) pos = this.readBody(chunk, pos);
        else break;
      }
    } catch (err) {
      if (err instanceof RequestError) return this.refuse(err.status, err.message);
      if (err instanceof ChunkedError) return this.refuse(400, `malformed chunked body: ${err.message}`);
      throw err;
    }
    if (pos < chunk.length && this.state !== State.Closing) this.hold(pos === 0 ? chunk : chunk.subarray(pos));
  }

  /** Feeds what was held, in order, for as long as the state allows. */
  private replay(): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const chunk of held) {
      if (this.state === State.Closing) return;
      if (this.state === State.Active || this.waitingDrain || this.waitingBudget) this.hold(chunk);
      else this.feed(chunk);
    }
    if (this.heldBytes <= MAX_HELD && !this.waitingDrain && !this.waitingBudget && this.state !== State.Closing && this.socket.isPaused()) this.socket.resume();
  }

  /** Reads head bytes from `chunk[pos..]`; returns where it stopped. */
  private readHead(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    const hb = this.headBuf;
    if (hb.length === 0) {
      // robustness (RFC 9112 §2.2): empty lines before a request line are ignored, and start no timer
      while (pos < len && (chunk[pos] === 13 || chunk[pos] === 10)) pos++;
      if (pos === len) return len;
      this.headSince = Date.now();
    }
    const limit = this.server.opts.maxHeadBytes;
    // the blank line ending the head, perhaps begun in an earlier read
    let end = -1;
    for (let k = Math.min(3, hb.length); k >= 1 && end === -1; k--) {
      let match = true;
      for (let i = 0; i < k && match; i++) match = hb.fromEnd(k - i) === TERMINATOR[i];
      for (let i = k; i < 4 && match; i++) match = pos + i - k < len && chunk[pos + i - k] === TERMINATOR[i];
      if (match) end = pos + 4 - k;
    }
    if (end === -1) {
      const at = chunk.indexOf(TERMINATOR_BYTES, pos);
      if (at !== -1) end = at + 4;
    }
    if (end === -1) {
      if (hb.length + len - pos > limit) throw new RequestError(431, `request head larger than ${limit} bytes`);
      // a head that will never end in CRLFCRLF (lines ended by a bare LF or CR) is refused now, not at the timeout
      for (let j = chunk.indexOf(10, pos); j !== -1 && j < len; j = chunk.indexOf(10, j + 1)) {
        if ((j > pos ? chunk[j - 1] : hb.fromEnd(1)) !== 13) throw new RequestError(400, 'bare LF in the request head');
      }
      for (let j = chunk.indexOf(13, pos); j !== -1 && j < len - 1; j = chunk.indexOf(13, j + 1)) {
        if (chunk[j + 1] !== 10) throw new RequestError(400, 'bare CR in the request head');
      }
      if (hb.fromEnd(1) === 13 && chunk[pos] !== 10) throw new RequestError(400, 'bare CR in the request head');
      hb.append(chunk, pos, len);
      return len;
    }
    if (hb.length + end - pos - 4 > limit) throw new RequestError(431, `request head larger than ${limit} bytes`);
    let head: RequestHead;
    if (hb.length === 0) head = parseRequestHead(chunk, pos, end - 4);
    else {
      hb.append(chunk, pos, end);
      try {
        head = parseRequestHead(hb.bytes(), 0, hb.length - 4);
      } finally {
        hb.clear();
      }
    }
    this.startRequest(head, len - end);
    return end;
  }

  /** A head is complete; `following` bytes of the same read come after it. */
  private startRequest(head: RequestHead, following: number): void {
    this.head = head;
    if (head.url === '*') return this.answerOptions();
    const max = this.server.opts.maxBodyBytes;
    if (head.contentLength > max) return this.refuse(413, this.server.opts.tooLargeMessage(max));
    if (head.contentLength === 0) return this.dispatch(undefined);
    this.state = State.Body;
    this.bodySince = Date.now();
    this.tooLarge = false;
    if (head.contentLength === -1) {
      this.chunkedWire = 0;
      this.chunked ??= new ChunkedDecoder((buf, start, stop) => this.chunkData(buf, start, stop));
      this.chunked.reset();
      this.body = new BodyBuffer(this.server, max);
    } else {
      this.remaining = head.contentLength;
      this.body = undefined;
    }
    if (head.expectContinue && (head.contentLength === -1 || following < head.contentLength)) this.socket.write(CONTINUE, 'latin1');
  }

  /** Reads body bytes from `chunk[pos..]`; returns where it stopped. */
  private readBody(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    const max = this.server.opts.maxBodyBytes;
    if (this.head!.contentLength === -1) {
      const body = this.body!;
      // the decoded data of this read is at most its size: room for it first, or wait
      if (!body.ensure(Math.min(len - pos, max - body.length))) return this.waitForBudget(pos);
      const used = this.chunked!.execute(chunk, pos, len);
      this.chunkedWire += used - pos;
      if (this.tooLarge) {
        this.refuse(413, this.server.opts.tooLargeMessage(max));
        return len;
      }
      if (this.chunkedWire - body.length > CHUNK_FRAMING_ALLOWANCE + body.length) {
        this.refuse(413, `chunked framing of the request body exceeds its size plus ${CHUNK_FRAMING_ALLOWANCE} bytes`);
        return len;
      }
      if (this.chunked!.done) this.dispatch(body.contents());
      return used;
    }
    const n = Math.min(this.remaining, len - pos);
    if (this.body === undefined && n === this.remaining) {
      // the whole body is in this read: a view of it, reserved as it is
      if (!this.server.take(n, 0)) return this.waitForBudget(pos);
      this.bodyReserved = n;
      this.bodyView = chunk.subarray(pos, pos + n);
      this.remaining = 0;
      this.dispatch(this.bodyView);
      return pos + n;
    }
    this.body ??= new BodyBuffer(this.server, this.head!.contentLength);
    if (!this.body.ensure(n)) return this.waitForBudget(pos);
    this.body.append(chunk, pos, pos + n);
    this.remaining -= n;
    if (this.remaining === 0) this.dispatch(this.body.contents());
    return pos + n;
  }

  private chunkData(buf: Buffer, start: number, stop: number): void {
    const body = this.body!;
    if (this.tooLarge || body.length + stop - start > this.server.opts.maxBodyBytes) {
      this.tooLarge = true;
      return;
    }
    body.append(buf, start, stop);
  }

  /** No body budget left: stop reading; `retry` continues once some is given back. */
  private waitForBudget(pos: number): number {
    this.waitingBudget = true;
    this.socket.pause();
    this.server.wait(this);
    return pos;
  }

  retry(): void {
    if (!this.waitingBudget) return;
    this.waitingBudget = false;
    this.replay();
  }

  /** `OPTIONS *` asks about the server itself (RFC 9110 §9.3.7): answered here. */
  private answerOptions(): void {
    const head = this.head!;
    this.head = undefined;
    this.state = State.Active;
    const res = new Http1Response(this, this.socket, false, head.keepAlive, head.httpVersionMinor === 0);
    this.res = res;
    res.writeHead(200, { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS', 'content-length': 0 });
    res.end();
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

  /** Gives the body's budget back (the request is over). */
  private releaseBody(): void {
    this.body?.release();
    this.body = undefined;
    this.bodyView = undefined;
    if (this.bodyReserved > 0) this.server.give(this.bodyReserved);
    this.bodyReserved = 0;
  }

  responseDone(res: Http1Response, keepAlive: boolean): void {
    if (res !== this.res) return;
    this.res = undefined;
    this.releaseBody();
    if (!keepAlive || this.server.closing) {
      this.startClosing();
      return;
    }
    this.state = State.Head;
    this.idleSince = Date.now();
    // the next pipelined request waits until the client has read this answer: a client that
    // sends without reading must not make us queue answers without end
    if (this.socket.writableNeedDrain) {
      this.waitingDrain = true;
      this.socket.once('drain', () => {
        this.waitingDrain = false;
        this.replay();
      });
      return;
    }
    if (this.held.length > 0 || this.socket.isPaused()) this.replay();
  }

  /** An error answer of the server's own, then the connection closes. */
  private refuse(status: number, message: string): void {
    this.server.opts.onError?.(status);
    this.releaseBody();
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
    this.held = [];
    this.heldBytes = 0;
    this.headBuf.clear();
    this.idleSince = Date.now();
    if (this.socket.isPaused()) this.socket.resume();
    this.socket.end();
  }

  closeIfIdle(): void {
    if (this.state === State.Head && this.headBuf.length === 0 && this.held.length === 0 && !this.waitingDrain) this.socket.destroy();
  }

  checkTimeouts(now: number): void {
    const o = this.server.opts;
    switch (this.state) {
      case State.Head:
        if (this.waitingDrain) break; // an answer the client has not read yet is not idleness
        if (this.headBuf.length > 0) {
          if (now - this.headSince > o.headersTimeoutMs) this.refuse(408, 'timed out waiting for the request head');
        } else if (now - this.idleSince > o.keepAliveTimeoutMs) this.socket.destroy();
        break;
      case State.Body:
        if (now - this.bodySince > o.requestTimeoutMs) this.refuse(408, 'timed out waiting for the request body');
        break;
      case State.Closing:
        if (now - this.idleSince > CLOSING_GRACE_MS) this.socket.destroy();
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
    this.releaseBody();
    const res = this.res;
    this.res = undefined;
    this.state = State.Closing;
    if (res !== undefined && !res.finished) res.onClose?.();
  }
}
