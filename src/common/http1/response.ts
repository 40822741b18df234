import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { BAD_VALUE, TOKEN } from './syntax.js';
import { writeBuffer, writeOut } from './write-buffer.js';

/** A header this writer refuses to send: it would split or corrupt the response. */
export class HeaderError extends Error {}

/** Headers as a flat [name, value, ...] list or an object. */
export type HeaderInput = readonly string[] | Readonly<Record<string, string | number>>;

/** What a response tells its connection when it is complete. */
export interface ResponseOwner {
  readonly closing: boolean;
  responseDone(res: Http1Response, keepAlive: boolean): void;
}

let dateText = '';
let dateUntil = 0;
/** The Date header value, formatted once per second. */
function httpDate(): string {
  const now = Date.now();
  if (now >= dateUntil) {
    dateText = new Date(now).toUTCString();
    dateUntil = now - (now % 1000) + 1000;
  }
  return dateText;
}

function flatten(headers: Readonly<Record<string, string | number>>): string[] {
  const out: string[] = [];
  for (const name in headers) out.push(name, String(headers[name]));
  return out;
}

function uncork(socket: Socket): void {
  socket.uncork();
}

/**
 * Whether the token `name` is `lower` (lower-case letters and `-`) in any case, without making a
 * lower-cased copy: `| 0x20` folds A-Z onto a-z, and no other token character lands on a letter
 * or on `-`.
 */
function isName(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** Writes above this size go out as separate buffers instead of being copied into one. */
const COPY_LIMIT = 64 * 1024;

/**
 * One response on a server connection, with the part of node:http's ServerResponse API the services
 * use (writeHead, write, end, headersSent, destroy). The head is held until the first body bytes so
 * that both leave in one write; each write is one socket write, framed here when the body is
 * chunked. A relay that already has chunked bytes passes `preframed` and they go out untouched.
 */
export class Http1Response {
  headersSent = false;
  /** end() was called. */
  finished = false;
  /** Called once if the connection closes before the response is finished (client gone). */
  onClose: (() => void) | undefined;
  private head: string | undefined;
  private chunked = false;
  private noBody = false;

  constructor(
    private readonly owner: ResponseOwner,
    readonly socket: Socket,
    private readonly isHead: boolean,
    private keepAlive: boolean,
    private readonly http10: boolean,
  ) {}

  /**
   * Stores the status line and headers. Framing follows node:http: Content-Length if given, else
   * chunked (HTTP/1.1 clients) or close-delimited (HTTP/1.0). `preframed`: the headers carry
   * `Transfer-Encoding: chunked` and every write is already chunk-framed. `checked`: every name and
   * value already passed a parser with the same rules as the check below (a relayed head), so it is
   * not run twice.
   */
  writeHead(status: number, headers: HeaderInput = [], preframed = false, checked = false): this {
    if (this.headersSent) return this;
    let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    let hasLength = false;
    let hasEncoding = false;
    let hasDate = false;
    const list = Array.isArray(headers) ? (headers as readonly string[]) : flatten(headers as Readonly<Record<string, string | number>>);
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!;
      // second line of defence against response splitting: whatever the caller relays, a name is
      // a token and a value holds no CR, LF, NUL or other CTL
      if (!checked && (!TOKEN.test(name) || BAD_VALUE.test(list[i + 1]!))) throw new HeaderError(`refusing to send header ${JSON.stringify(name.slice(0, 64))}: invalid name or value`);
      // framing and connection management are ours; short names are checked first to stay cheap
      const n = name.length;
      if (n === 14 ? isName(name, 'content-length') : n === 17 ? isName(name, 'transfer-encoding') : n === 4 ? isName(name, 'date') : false) {
        if (n === 14) hasLength = true;
        else if (n === 17) hasEncoding = true;
        else hasDate = true;
      } else if (n === 10 && (isName(name, 'connection') || isName(name, 'keep-alive'))) continue;
      text += `${name}: ${list[i + 1]!}\r\n`;
    }
    this.noBody = this.isHead || status === 204 || status === 304 || status < 200;
    if (!this.noBody && !hasLength) {
      if (preframed) {
        if (!hasEncoding) text += 'transfer-encoding: chunked\r\n';
      } else if (!this.http10) {
        this.chunked = true;
        if (!hasEncoding) text += 'transfer-encoding: chunked\r\n';
      } else this.keepAlive = false; // HTTP/1.0 without a length: the end of the body is the close
    }
    if (this.owner.closing) this.keepAlive = false;
    if (!this.keepAlive) text += 'connection: close\r\n';
    else if (this.http10) text += 'connection: keep-alive\r\n';
    if (!hasDate) text += `date: ${httpDate()}\r\n`;
    this.head = `${text}\r\n`;
    this.headersSent = true;
    return this;
  }

  /** Writes body bytes; false when the socket's buffer is full (wait for onDrain). */
  write(data: string | Buffer): boolean {
    if (this.finished) return false;
    if (!this.headersSent) this.writeHead(200);
    return this.send(data, 0, typeof data === 'string' ? Buffer.byteLength(data) : data.length, false);
  }

  /** Writes `src[start, end)` (copied: `src` may be a reused read buffer). */
  writeFrom(src: Buffer, start: number, end: number): boolean {
    if (this.finished) return false;
    if (!this.headersSent) this.writeHead(200);
    return this.send(src, start, end, false);
  }

  /** Finishes the response, with optional last data in the same write. */
  end(data?: string | Buffer): void {
    if (this.finished) return;
    if (!this.headersSent) this.writeHead(200, data === undefined ? { 'content-length': 0 } : { 'content-length': Buffer.byteLength(data) });
    this.send(data, 0, data === undefined ? 0 : typeof data === 'string' ? Buffer.byteLength(data) : data.length, true);
    this.finished = true;
    this.owner.responseDone(this, this.keepAlive);
  }

  /**
   * Takes back a head that writeHead stored but no write has sent yet (it leaves with the first
   * body bytes), so that an error answer can go out instead; false once the head is on its way.
   */
  retractHead(): boolean {
    if (this.head === undefined || this.finished) return false;
    this.head = undefined;
    this.headersSent = false;
    this.chunked = false;
    this.noBody = false;
    return true;
  }

  /** Calls `fn` once the socket can take more data. */
  onDrain(fn: () => void): void {
    this.socket.once('drain', fn);
  }

  /** Cuts the connection now (the client sees an incomplete response). */
  destroy(): void {
    this.socket.destroy();
  }

  /** Closes the connection once what was written is sent (the client sees the body end early). */
  destroySoon(): void {
    if (this.finished) return;
    this.finished = true;
    this.owner.responseDone(this, false);
  }

  /** One socket write: pending head, chunk framing, data (a string is UTF-8), and the last-chunk marker. */
  private send(src: Buffer | string | undefined, start: number, end: number, last: boolean): boolean {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return true;
    if (this.chunked && !socket.writableCorked) {
      // events written one by one in the same tick leave together (as node:http does)
      socket.cork();
      process.nextTick(uncork, socket);
    }
    const head = this.head ?? '';
    this.head = undefined;
    const n = this.noBody || src === undefined ? 0 : end - start;
    const prefix = this.chunked && n > 0 ? `${n.toString(16)}\r\n` : '';
    const suffix = (this.chunked && n > 0 ? '\r\n' : '') + (this.chunked && last ? '0\r\n\r\n' : '');
    if (n === 0) return head.length + suffix.length > 0 ? socket.write(head + suffix, 'latin1') : true;
    const before = head.length + prefix.length;
    if (n > COPY_LIMIT) {
      socket.cork();
      if (before > 0) socket.write(head + prefix, 'latin1');
      // a slice of someone's read buffer is copied before it is queued
      if (typeof src === 'string') socket.write(src, 'utf8');
      else socket.write(Buffer.from(src!.subarray(start, end)));
      const ok = suffix.length > 0 ? socket.write(suffix, 'latin1') : socket.writableLength < socket.writableHighWaterMark;
      socket.uncork();
      return ok;
    }
    const out = writeBuffer(socket, before + n + suffix.length);
    if (head.length > 0) out.write(head, 0, 'latin1');
    if (prefix.length > 0) out.write(prefix, head.length, 'latin1');
    if (typeof src === 'string') out.write(src, before, 'utf8');
    else src!.copy(out, before, start, end);
    if (suffix.length > 0) out.write(suffix, before + n, 'latin1');
    return writeOut(socket, out);
  }
}
