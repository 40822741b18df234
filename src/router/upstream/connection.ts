import { connect as netConnect, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { AddressPolicy } from './address-policy.js';
import { ResponseParser, type ParserSink, type ResponseHead } from './response-parser.js';
import { writeBuffer, writeOut } from '../../common/http1/write-buffer.js';

export type UpstreamErrorCode = 'UPSTREAM_CONNECT_TIMEOUT' | 'UPSTREAM_HEADERS_TIMEOUT' | 'UPSTREAM_BODY_TIMEOUT' | 'UPSTREAM_CLOSED' | 'UPSTREAM_PROTOCOL' | 'UPSTREAM_ABORTED';

export class UpstreamError extends Error {
  constructor(
    readonly code: UpstreamErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What the caller of one upstream request is told, in order: headers, data*, then complete or error. */
export interface UpstreamHandler {
  /** The final response head; set `conn.rawChunked` here to receive a chunked body still framed. */
  onHeaders(head: ResponseHead, conn: UpstreamConnection): void;
  /** Body bytes `data[start, end)`, valid only during the call. Return false to stop reading until `conn.resume()`. */
  onData(data: Buffer, start: number, end: number): boolean;
  onComplete(): void;
  /** Exactly once instead of onComplete; after onHeaders too (the body was cut off). */
  onError(err: Error): void;
}

/** The pool's side of a connection. */
export interface ConnectionOwner {
  released(conn: UpstreamConnection, reusable: boolean): void;
  closed(conn: UpstreamConnection): void;
}

export interface Endpoint {
  host: string;
  port: number;
  tls: boolean;
  /** Under the address guard: how the host is resolved, or why it is refused (address-policy.ts). */
  address?: AddressPolicy;
}

export const enum Phase {
  Idle,
  Connect,
  Head,
  Body,
}

/**
 * Every plain TCP read lands in this one buffer (net's `onread`): no allocation and no stream
 * machinery per read. It is safe to share because each read is handled synchronously; whatever
 * must outlive the callback is copied by the handler.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Request bodies up to this size are copied behind the head and sent as one buffer. */
const JOIN_LIMIT = 16 * 1024;

/** One keep-alive HTTP/1.1 connection to a backend, carrying one request at a time. */
export class UpstreamConnection implements ParserSink {
  readonly socket: Socket;
  private readonly parser = new ResponseParser(this);
  private handler: UpstreamHandler | undefined;
  private head: ResponseHead | undefined;
  private connected = false;
  /** Result of the current read for net: false pauses the socket. */
  private reading = true;
  private ended = false;
  private lastError: Error | undefined;
  phase = Phase.Connect;
  /** When the current phase (or, in the body, the last quiet period) started. */
  phaseStart = Date.now();
  /** Set by every read; the sweeper turns it into a timestamp (no clock read per read). */
  touched = false;
  paused = false;
  /** How long this connection may sit idle (the server's Keep-Alive hint can shorten it). */
  keepAliveMs: number;
  /** Index in the pool's list of busy connections. */
  slot = -1;

  constructor(
    private readonly owner: ConnectionOwner,
    endpoint: Endpoint,
    keepAliveMs: number,
  ) {
    this.keepAliveMs = keepAliveMs;
    const lookup = endpoint.address?.lookup;
    const refusal = endpoint.address?.refusal;
    if (refusal !== undefined) {
      // never connected: the request fails as a connect error does, once 'close' comes (next tick)
      this.lastError = refusal;
      this.socket = new Socket();
      this.socket.destroy();
    } else if (endpoint.tls) {
      this.socket = tlsConnect({ host: endpoint.host, port: endpoint.port, servername: endpoint.host, ...(lookup ? { lookup } : {}) });
      this.socket.setNoDelay(true);
      this.socket.setKeepAlive(true, 60_000);
      this.socket.on('secureConnect', () => this.onConnect());
      this.socket.on('data', (chunk: Buffer) => {
        if (!this.onRead(chunk.length, chunk)) this.socket.pause();
      });
    } else {
      this.socket = netConnect({
        host: endpoint.host,
        port: endpoint.port,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: 60_000,
        ...(lookup ? { lookup } : {}),
        onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.onRead(n, buf as Buffer) },
      });
      this.socket.on('connect', () => this.onConnect());
    }
    this.socket.on('error', (err) => (this.lastError = err));
    this.socket.on('close', () => this.onClose());
  }

  /** Sends one request; the answer goes to `handler`. */
  start(head: string, body: Buffer | undefined, headRequest: boolean, handler: UpstreamHandler): void {
    this.handler = handler;
    this.head = undefined;
    this.ended = false;
    this.paused = false;
    this.touched = false;
    this.parser.reset(headRequest);
    this.phase = this.connected ? Phase.Head : Phase.Connect;
    this.phaseStart = Date.now();
    const socket = this.socket;
    if (body === undefined || body.length === 0) {
      socket.write(head, 'latin1');
    } else if (body.length <= JOIN_LIMIT) {
      const out = writeBuffer(socket, head.length + body.length);
      out.write(head, 0, 'latin1');
      body.copy(out, head.length);
      writeOut(socket, out);
    } else {
      socket.cork();
      socket.write(head, 'latin1');
      socket.write(body);
      socket.uncork();
    }
  }

  /** Ends `handler`'s request (if it is still the current one) with an error; the connection is closed. */
  abort(handler: UpstreamHandler, err?: Error): void {
    if (this.handler !== handler) return;
    this.fail(err ?? new UpstreamError('UPSTREAM_ABORTED', 'request aborted'));
  }

  /** Reading resumes after a handler returned false from onData. */
  resume(handler: UpstreamHandler): void {
    if (this.handler !== handler || !this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Fails the current request (timeouts, protocol errors, aborts) and closes the connection. */
  fail(err: Error): void {
    const handler = this.handler;
    this.handler = undefined;
    this.parser.stop();
    this.socket.destroy();
    handler?.onError(err);
  }

  /** Closes an idle connection. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Set rawChunked from onHeaders to receive the chunked body with its framing. */
  set rawChunked(value: boolean) {
    this.parser.rawChunked = value;
  }

  private onConnect(): void {
    this.connected = true;
    if (this.phase === Phase.Connect) {
      this.phase = Phase.Head;
      this.phaseStart = Date.now();
    }
  }

  private onRead(n: number, buf: Buffer): boolean {
    if (this.handler === undefined) {
      // bytes nobody asked for (an idle connection, or after a failure): not usable any more
      this.socket.destroy();
      return false;
    }
    this.touched = true;
    this.reading = true;
    let used: number;
    try {
      used = this.parser.execute(buf, n);
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
    if (this.ended) this.finish(used === n);
    if (!this.reading) this.paused = true;
    return this.reading;
  }

  onHead(head: ResponseHead): void {
    this.head = head;
    this.phase = Phase.Body;
    this.handler!.onHeaders(head, this);
  }

  onBody(data: Buffer, start: number, end: number): void {
    if (!this.handler!.onData(data, start, end)) this.reading = false;
  }

  onEnd(): void {
    // finished after the parser returns, once it is known whether bytes follow the response
    this.ended = true;
  }

  /** The response is complete: hand the connection back, then tell the handler. */
  private finish(clean: boolean): void {
    const handler = this.handler!;
    this.handler = undefined;
    this.ended = false;
    this.phase = Phase.Idle;
    this.paused = false;
    const head = this.head!;
    // A request still being written (the server answered early) or stray bytes: do not reuse.
    const reusable = clean && head.keepAlive && this.socket.writableLength === 0;
    if (reusable && head.keepAliveHintMs > 0) this.keepAliveMs = Math.min(this.keepAliveMs, head.keepAliveHintMs - 1000);
    this.owner.released(this, reusable && this.keepAliveMs > 0);
    handler.onComplete();
  }

  private onClose(): void {
    this.owner.closed(this);
    if (this.handler === undefined) return;
    // A close-delimited body ends here; anything else was cut off.
    if (this.phase === Phase.Body && this.parser.finish()) {
      this.finish(false);
      return;
    }
    const reason = this.lastError ?? new UpstreamError('UPSTREAM_CLOSED', this.phase === Phase.Body ? 'upstream closed the connection mid-response' : 'upstream closed the connection before responding');
    this.fail(reason);
  }
}
