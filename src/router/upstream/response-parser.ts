import { ChunkedDecoder } from '../../common/http1/chunked.js';
import { FieldNames } from '../../common/http1/field-names.js';
import { latin1, TCHAR as SHARED_TCHAR, trimOws } from '../../common/http1/syntax.js';

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
  /** Flat [name, value, ...] as received (latin1), values without the SP/HTAB around them. */
  headers: string[];
  /** The names of `headers` lower-cased, one a field (headers[2i] is names[i] as sent). */
  names: string[];
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
  /**
   * A head split over several reads: its bytes so far, in pending[0, pendingLen). The buffer grows by
   * doubling, so a head that trickles in a byte at a time costs linear copying, not quadratic.
   */
  private pending: Buffer | undefined;
  private pendingLen = 0;
  /** Body bytes still to come (Length; the chunked decoder counts its own). */
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
    this.pending = undefined;
    this.pendingLen = 0;
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
   * left unconsumed (we never pipeline, so the caller does not reuse a connection that sent more).
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
      // the head so far is data[start, dataLen); the bytes from `fresh` on arrived with this read
      let data = buf;
      let start = offset;
      let dataLen = len;
      let fresh = offset;
      const prior = this.pendingLen;
      if (this.pending !== undefined) {
        // bytes beyond the largest head and its blank line cannot be part of it: copy no more
        this.append(buf, offset, offset + Math.min(len - offset, MAX_HEAD_BYTES + 4 - prior));
        // a view of the valid bytes, so that searching never scans the spare capacity
        data = this.pending!.subarray(0, this.pendingLen);
        start = 0;
        dataLen = this.pendingLen;
        fresh = prior;
      }
      const end = data.indexOf(HEAD_END, Math.max(start, fresh - 3));
      if (end === -1 || end + 4 > dataLen) {
        if (dataLen - start > MAX_HEAD_BYTES) throw new ResponseParseError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
        // a head with bare LF (or CR) line ends never ends in CRLF CRLF: say so now, not at the headers timeout
        const bad = bareLineBreak(data, start, fresh, dataLen);
        if (bad !== undefined) throw new ResponseParseError(bad);
        if (this.pending === undefined) this.append(buf, offset, len);
        return -1;
      }
      if (end - start > MAX_HEAD_BYTES) throw new ResponseParseError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
      const next = this.pending !== undefined ? offset + end + 4 - prior : end + 4;
      // (`data` keeps a pending head's bytes while they are parsed)
      this.pending = undefined;
      this.pendingLen = 0;
      const head = parseHeadText(data, start, end, this.headRequest);
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

  /** Appends buf[from, to) to the pending head. */
  private append(buf: Buffer, from: number, to: number): void {
    const need = this.pendingLen + to - from;
    let pending = this.pending;
    if (pending === undefined || need > pending.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(MAX_HEAD_BYTES + 4, (pending?.length ?? 512) * 2)));
      pending?.copy(grown, 0, 0, this.pendingLen);
      this.pending = pending = grown;
    }
    buf.copy(pending, this.pendingLen, from, to);
    this.pendingLen = need;
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

/**
 * Why data[start, end) cannot be the start of a head, judging the bytes from `from` on (and the one
 * before): an LF without CR, or a CR followed by anything but LF. Undefined when nothing is wrong yet.
 */
function bareLineBreak(data: Buffer, start: number, from: number, end: number): string | undefined {
  let prev = from > start ? data[from - 1]! : -1;
  for (let i = from; i < end; i++) {
    const c = data[i]!;
    if (c === LF && prev !== CR) return 'LF without CR in response head';
    if (prev === CR && c !== LF) return 'CR without LF in response head';
    prev = c;
  }
  return undefined;
}

/** Response field names as backends send them (see FieldNames). */
const NAMES = new FieldNames();


/** tchar as a table (syntax.ts's), held in a local constant: the hot loop reads it without an import-binding check. */
const TCHAR = SHARED_TCHAR;

/** 1 for the bytes allowed in a reason phrase: HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5; syntax.ts's BAD_VALUE as a table; header values are checked inline). */
const FIELD_CHAR = new Uint8Array(256);
FIELD_CHAR[9] = 1;
for (let c = 32; c < 256; c++) if (c !== 127) FIELD_CHAR[c] = 1;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

function invalid(what: string, text: string, from: number): ResponseParseError {
  return new ResponseParseError(`${what}: ${JSON.stringify(text.slice(from, from + 64))}`);
}

/** Why a header line starting at `lineStart` has no valid name ending at `pos` (off the hot path). */
function nameError(text: string, lineStart: number, pos: number): ResponseParseError {
  const c = text.charCodeAt(pos);
  let what = 'invalid header line';
  if (pos === lineStart && (c === SP || c === HTAB)) what = 'folded header line (obs-fold)';
  else if (pos > lineStart && /^[ \t]+:/.test(text.slice(pos, pos + 64))) what = 'whitespace between header name and colon';
  else if (c === LF || (c === CR && text.charCodeAt(pos + 1) !== LF)) what = c === LF ? 'LF without CR in header' : 'CR without LF in header';
  return invalid(what, text, lineStart);
}

/** Why a header value stopped at `pos` before its line's end (off the hot path). */
function valueError(text: string, lineStart: number, pos: number): ResponseParseError {
  const c = text.charCodeAt(pos);
  const what = c === LF ? 'LF without CR in header' : c === CR ? 'CR without LF in header' : 'invalid character in header value';
  return invalid(what, text, lineStart);
}

/**
 * Parses the head text (without the final blank line); undefined for a 1xx interim response.
 *
 * One pass over the characters, which are bytes (latin1). The rules are llhttp's strict mode or
 * stricter (test/upstream-rules.test.ts names each one): lines end in CRLF only, so a bare CR or LF
 * anywhere is an error; a header name is a token directly followed by the colon; no obs-fold; only
 * SP and HTAB are stripped around a value, which holds no CTL (and the framing fields no HTAB); the
 * status is three digits. Whatever passes can be relayed line by line without a client reading a
 * different head.
 */
export function parseHeadText(bytes: Uint8Array, from: number, to: number, headRequest: boolean): ResponseHead | undefined {
  // bytes are read from `bytes` (a typed array read is a few instructions, a string's charCodeAt
  // in optimised code several more); names, values and error messages are cut from the text
  const text = latin1(bytes, from, to);
  const len = text.length;
  // status-line = HTTP-version SP 3DIGIT [ SP reason-phrase ] (a missing reason is common and harmless)
  if (len < 12 || !text.startsWith('HTTP/1.') || bytes[from + 8]! !== SP) throw invalid('invalid status line', text, 0);
  const minor = bytes[from + 7]! - 48;
  const d0 = bytes[from + 9]! - 48;
  const d1 = bytes[from + 10]! - 48;
  const d2 = bytes[from + 11]! - 48;
  // `>>> 0` turns a negative difference (a byte below '0') into a large number
  if ((minor !== 0 && minor !== 1) || d0 >>> 0 > 9 || d1 >>> 0 > 9 || d2 >>> 0 > 9 || d0 === 0) throw invalid('invalid status line', text, 0);
  const status = d0 * 100 + d1 * 10 + d2;
  let pos = 12;
  if (pos < len && bytes[from + pos]! !== CR) {
    if (bytes[from + pos]! !== SP) throw invalid('invalid status line', text, 0);
    for (pos++; pos < len; pos++) {
      const c = bytes[from + pos]!;
      if (c === CR) break;
      if (FIELD_CHAR[c] !== 1) throw invalid(c === LF ? 'LF without CR in status line' : 'invalid character in status line', text, 0);
    }
  }
  if (pos < len && (pos + 1 === len || bytes[from + pos + 1]! !== LF)) throw invalid('CR without LF in status line', text, 0);
  if (status === 101) throw new ResponseParseError('unexpected protocol switch (101)');
  pos += 2;

  const headers: string[] = [];
  const names: string[] = [];
  let contentLength = -1;
  let hasTransferEncoding = false;
  let connClose = false;
  let connKeepAlive = false;
  let keepAliveHintMs = 0;
  while (pos < len) {
    // field-name ":" OWS field-value OWS CRLF; a line starting with SP/HTAB (obs-fold) fails here
    const lineStart = pos;
    let hash = 0;
    let b = 0;
    while (pos < len && TCHAR[(b = bytes[from + pos]!)] === 1) {
      hash = (Math.imul(hash, 31) + b) | 0; // nextNameHash, inlined
      pos++;
    }
    if (pos === lineStart || pos === len || bytes[from + pos]! !== COLON) throw nameError(text, lineStart, pos);
    const nameEnd = pos++;
    // (every read stays below `len`: reading past the end would deoptimise this hot function)
    let c = 0;
    let tab = false;
    while (pos < len && ((c = bytes[from + pos]!) === SP || c === HTAB)) {
      if (c === HTAB) tab = true;
      pos++;
    }
    const valueStart = pos;
    let valueEnd = pos;
    for (; pos < len; pos++) {
      c = bytes[from + pos]!;
      if (c > SP) {
        if (c === 127) break;
        valueEnd = pos + 1;
      } else if (c === HTAB) tab = true;
      else if (c !== SP) break;
    }
    if (pos < len && (c !== CR || pos + 1 === len || bytes[from + pos + 1]! !== LF)) throw valueError(text, lineStart, pos);
    const name = NAMES.name(bytes, from + lineStart, from + nameEnd, hash, text, from);
    const lower = NAMES.lower;
    const value = text.slice(valueStart, valueEnd);
    pos += 2;
    // Only a few names matter for framing (the cache's names are internalized: these compare pointers).
    const n = nameEnd - lineStart;
    if (n === 14 || n === 17 || n === 10) {
      // framing fields take SP as whitespace, not HTAB, as on the request side: llhttp refuses
      // "Content-Length: 5<HTAB>" and reads "chunked<HTAB>" as an unknown coding
      if (tab && (lower === 'content-length' || lower === 'transfer-encoding')) throw invalid(`HTAB in ${lower}`, text, lineStart);
      if (lower === 'content-length') {
        // one line, one value: llhttp refuses lists and repeats even of the same number, so do we
        if (contentLength !== -1) throw new ResponseParseError('duplicate content-length');
        contentLength = parseLength(value);
      } else if (lower === 'transfer-encoding') {
        // chunked is the only coding we can frame and relay (others are hop-by-hop: we would have to decode them)
        if (hasTransferEncoding) throw new ResponseParseError('duplicate transfer-encoding');
        if (value.length !== 7 || value.toLowerCase() !== 'chunked') throw new ResponseParseError(`unsupported transfer-encoding: ${JSON.stringify(value.slice(0, 64))}`);
        hasTransferEncoding = true;
      } else if (lower === 'connection') {
        // only SP/HTAB around a token: "\xa0keep-alive" is not keep-alive (to llhttp neither)
        if (value === 'keep-alive') connKeepAlive = true;
        else if (value === 'close') connClose = true;
        else for (const token of value.toLowerCase().split(',')) {
          const t = trimOws(token);
          if (t === 'close') connClose = true;
          else if (t === 'keep-alive') connKeepAlive = true;
        }
      } else if (lower === 'keep-alive') {
        const m = /timeout\s*=\s*(\d+)/i.exec(value);
        if (m) keepAliveHintMs = Number(m[1]) * 1000;
      }
    }
    headers.push(name, value);
    names.push(lower);
  }
  if (status < 200) {
    // an interim answer is HTTP/1.1 only (RFC 9110 §15.2); llhttp takes a 1.0 one as the last message
    if (minor === 0) throw new ResponseParseError(`${status} interim response in HTTP/1.0`);
    return undefined;
  }
  // Both framings is a smuggling signature (RFC 9112 §6.3), refused as llhttp does; chunked in an
  // HTTP/1.0 message is faulty framing (RFC 9112 §6.1).
  if (hasTransferEncoding && contentLength !== -1) throw new ResponseParseError('both transfer-encoding and content-length');
  if (hasTransferEncoding && minor === 0) throw new ResponseParseError('transfer-encoding in an HTTP/1.0 response');

  let framing: BodyFraming;
  if (headRequest || status === 204 || status === 304) framing = 'none';
  else if (hasTransferEncoding) framing = 'chunked';
  else if (contentLength >= 0) framing = 'length';
  else framing = 'close';
  const keepAlive = framing !== 'close' && !connClose && (minor === 1 || connKeepAlive);
  return { status, headers, names, framing, contentLength: framing === 'length' ? contentLength : -1, keepAlive, keepAliveHintMs };
}

/** 1*DIGIT, at most 15 digits (beyond any body we relay, and exact in a double). */
function parseLength(value: string): number {
  const n = value.length;
  if (n === 0 || n > 15) throw new ResponseParseError(`invalid content-length: ${JSON.stringify(value.slice(0, 64))}`);
  let num = 0;
  for (let i = 0; i < n; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d >>> 0 > 9) throw new ResponseParseError(`invalid content-length: ${JSON.stringify(value.slice(0, 64))}`);
    num = num * 10 + d;
  }
  return num;
}
