import { ChunkedDecoder, endsChunked } from '../../common/http1/chunked.js';
import { BAD_VALUE } from '../../common/http1/request-head.js';

/**
 * An HTTP/1.1 response parser for the router's upstream connections (RFC 9112). It parses the
 * head into a flat header list and follows the body framing. A chunked body is handed over either
 * decoded or, for a client that speaks chunked itself, as the raw framed bytes, so that relaying an
 * SSE stream needs no re-encoding and one write per socket read.
 */

/** How the body's end is known (RFC 9112 §6.3). */
export type BodyFraming = 'none' | 'length' | 'chunked' | 'close';

export interface ResponseHead {
  status: number;
  /** Flat [name, value, ...] as received (latin1). */
  headers: string[];
  framing: BodyFraming;
  /** For 'length'; -1 otherwise. */
  contentLength: number;
  /** Whether the connection may carry another request after this response. */
  keepAlive: boolean;
  /** The server's `Keep-Alive: timeout=N` hint in ms; 0 without one. */
  keepAliveHintMs: number;
}

export interface ParserSink {
  onHead(head: ResponseHead): void;
  /** A piece of the body; `data` is only valid during the call (the caller's read buffer). */
  onBody(data: Buffer, start: number, end: number): void;
  onEnd(): void;
}

export class ResponseParseError extends Error {
  readonly code = 'UPSTREAM_PROTOCOL';
}

/** Largest response head accepted (status line and headers). */
export const MAX_HEAD_BYTES = 64 * 1024;
const enum State {
  Head,
  Length,
  Chunked,
  Close,
  Done,
  Dead,
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

export class ResponseParser {
  /** Hand a chunked body over with its framing instead of decoded (set it in onHead). */
  rawChunked = false;
  private state = State.Head;
  private headRequest = false;
  /** A head split over several reads. */
  private partial: Buffer | undefined;
  /** Body bytes (Length) or chunk bytes (ChunkData) still to come. */
  private remaining = 0;
  private readonly chunked: ChunkedDecoder;

  constructor(private readonly sink: ParserSink) {
    this.chunked = new ChunkedDecoder((buf, start, end) => {
      if (!this.rawChunked) this.sink.onBody(buf, start, end);
    });
  }

  /** Prepares for the response to the next request; a HEAD request's response has no body. */
  reset(headRequest: boolean): void {
    this.state = State.Head;
    this.headRequest = headRequest;
    this.partial = undefined;
    this.rawChunked = false;
    this.remaining = 0;
  }

  get done(): boolean {
    return this.state === State.Done;
  }

  /** A callback may stop the parser; read through a getter so the compiler does not narrow it away. */
  private get stopped(): boolean {
    return this.state === State.Dead;
  }

  /** Stops all further callbacks (the exchange was aborted). */
  stop(): void {
    this.state = State.Dead;
    this.chunked.stop();
  }

  /**
   * Feeds `buf[0, len)`. Returns how many bytes belonged to the response; anything after its end is
   * left unconsumed (we never pipeline, so the caller treats it as a protocol error).
   */
  execute(buf: Buffer, len: number): number {
    let pos = 0;
    if (this.state === State.Head) {
      pos = this.parseHead(buf, len);
      if (pos < 0) return len;
    }
    return this.parseBody(buf, pos, len);
  }

  /** The connection closed: true if that ends the response (a close-delimited body). */
  finish(): boolean {
    if (this.state !== State.Close) return this.state === State.Done;
    this.state = State.Done;
    this.sink.onEnd();
    return true;
  }

  /** Returns the offset of the body in `buf`, or -1 when the head is still incomplete. */
  private parseHead(buf: Buffer, len: number): number {
    let offset = 0; // where the unparsed part of `buf` starts (after any 1xx interim responses)
    for (;;) {
      const partial = this.partial;
      const data = partial ? Buffer.concat([partial, buf.subarray(offset, len)]) : buf;
      const dataLen = partial ? data.length : len;
      const headStart = partial ? 0 : offset;
      const end = data.indexOf(HEAD_END, partial ? Math.max(0, partial.length - 3) : offset);
      if (end === -1 || end + 4 > dataLen) {
        if (dataLen - headStart > MAX_HEAD_BYTES) throw new ResponseParseError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
        this.partial = Buffer.from(data.subarray(headStart, dataLen));
        return -1;
      }
      if (end - headStart > MAX_HEAD_BYTES) throw new ResponseParseError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
      const next = partial ? offset + end + 4 - partial.length : end + 4;
      this.partial = undefined;
      const head = parseHeadText(data.toString('latin1', headStart, end), this.headRequest);
      if (head === undefined) {
        // 1xx interim response: skip it, the final one follows
        offset = next;
        if (offset >= len) return -1;
        continue;
      }
      this.startBody(head);
      return this.stopped ? -1 : next;
    }
  }

  private startBody(head: ResponseHead): void {
    switch (head.framing) {
      case 'none':
        this.state = State.Done;
        break;
      case 'length':
        this.remaining = head.contentLength;
        this.state = head.contentLength === 0 ? State.Done : State.Length;
        break;
      case 'chunked':
        this.state = State.Chunked;
        this.chunked.reset();
        break;
      case 'close':
        this.state = State.Close;
        break;
    }
    const state = this.state;
    this.sink.onHead(head);
    if (this.stopped) return;
    if (state === State.Done) this.sink.onEnd();
  }

  private parseBody(buf: Buffer, pos: number, len: number): number {
    const sink = this.sink;
    switch (this.state) {
      case State.Length: {
        const n = Math.min(this.remaining, len - pos);
        if (n > 0) sink.onBody(buf, pos, pos + n);
        if (this.stopped) return len;
        this.remaining -= n;
        if (this.remaining === 0) {
          this.state = State.Done;
          sink.onEnd();
        }
        return pos + n;
      }
      case State.Close:
        if (pos < len) sink.onBody(buf, pos, len);
        return len;
      case State.Chunked: {
        let end: number;
        try {
          end = this.chunked.execute(buf, pos, len);
        } catch (err) {
          throw new ResponseParseError((err as Error).message);
        }
        if (this.stopped) return len;
        // raw mode: the framed bytes go out as they came, trailers included
        if (this.rawChunked && end > pos) {
          sink.onBody(buf, pos, end);
          if (this.stopped) return len;
        }
        if (this.chunked.done) {
          this.state = State.Done;
          sink.onEnd();
        }
        return end;
      }
      default:
        // Done (or stopped): the rest is not part of this response
        return pos;
    }
  }
}

/** Parses the head text (without the final blank line); undefined for a 1xx interim response. */
export function parseHeadText(text: string, headRequest: boolean): ResponseHead | undefined {
  const lines = text.split('\r\n');
  const statusLine = lines[0]!;
  // HTTP/1.x SSS[ reason]
  if (!statusLine.startsWith('HTTP/1.') || statusLine.charCodeAt(8) !== 32) throw new ResponseParseError(`invalid status line: ${JSON.stringify(statusLine.slice(0, 64))}`);
  const minor = statusLine.charCodeAt(7) - 48;
  const status = Number(statusLine.slice(9, 12));
  if ((minor !== 0 && minor !== 1) || !Number.isInteger(status) || status < 100 || status > 999 || (statusLine.length > 12 && statusLine.charCodeAt(12) !== 32)) {
    throw new ResponseParseError(`invalid status line: ${JSON.stringify(statusLine.slice(0, 64))}`);
  }
  if (status === 101) throw new ResponseParseError('unexpected protocol switch (101)');
  if (status < 200) return undefined;

  const headers: string[] = [];
  let contentLength = -1;
  let chunked = false;
  let hasTransferEncoding = false;
  let connClose = false;
  let connKeepAlive = false;
  let keepAliveHintMs = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const first = line.charCodeAt(0);
    if (first === 32 || first === 9) {
      // obsolete line folding: a response may have it replaced by a space (RFC 9112 §5.2)
      if (headers.length === 0) throw new ResponseParseError('header continuation without a header');
      headers[headers.length - 1] = `${headers[headers.length - 1]!} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ResponseParseError(`invalid header line: ${JSON.stringify(line.slice(0, 64))}`);
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    // a stray CR or LF would end up in the client's response: refuse it
    if (BAD_VALUE.test(value)) throw new ResponseParseError(`invalid character in header ${name.slice(0, 64)}`);
    headers.push(name, value);
    // Only a few names matter for framing; compare lengths first to skip lower-casing the rest.
    const n = name.length;
    if (n !== 14 && n !== 17 && n !== 10) continue;
    const lower = name.toLowerCase();
    if (lower === 'content-length') {
      for (const part of value.split(',')) {
        const v = part.trim();
        if (!/^\d{1,15}$/.test(v)) throw new ResponseParseError(`invalid content-length: ${JSON.stringify(value.slice(0, 64))}`);
        const num = Number(v);
        if (contentLength !== -1 && contentLength !== num) throw new ResponseParseError('conflicting content-length values');
        contentLength = num;
      }
    } else if (lower === 'transfer-encoding') {
      hasTransferEncoding = true;
      chunked = endsChunked(value);
    } else if (lower === 'connection') {
      for (const token of value.toLowerCase().split(',')) {
        const t = token.trim();
        if (t === 'close') connClose = true;
        else if (t === 'keep-alive') connKeepAlive = true;
      }
    } else if (lower === 'keep-alive') {
      const m = /timeout\s*=\s*(\d+)/i.exec(value);
      if (m) keepAliveHintMs = Number(m[1]) * 1000;
    }
  }

  let framing: BodyFraming;
  if (headRequest || status === 204 || status === 304) framing = 'none';
  else if (hasTransferEncoding) framing = chunked ? 'chunked' : 'close';
  else if (contentLength >= 0) framing = 'length';
  else framing = 'close';
  // Both framings at once is a smuggling signature: use Transfer-Encoding, never reuse the connection.
  const ambiguous = hasTransferEncoding && contentLength >= 0;
  const keepAlive = framing !== 'close' && !connClose && !ambiguous && (minor === 1 || connKeepAlive);
  return { status, headers, framing, contentLength: framing === 'length' ? contentLength : -1, keepAlive, keepAliveHintMs };
}
