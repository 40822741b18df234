/**
 * The chunked transfer coding (RFC 9112 §7.1), scanned incrementally: chunk sizes, extensions,
 * data and trailers, split across reads anywhere. Used for request bodies (server) and response
 * bodies (router upstream). In decoded mode the chunk data is reported; a relay that forwards the
 * framed bytes as they are only needs to know where the body ends.
 */

import { TCHAR } from './syntax.js';

export class ChunkedError extends Error {}

/**
 * Whether a Transfer-Encoding value makes the body chunked: only when chunked is the final coding
 * (RFC 9112 §6.3). Requests and responses read it the same way, so a relay never frames a body
 * differently from the peer that sent it.
 */
export function endsChunked(transferEncoding: string): boolean {
  const codings = transferEncoding.toLowerCase().split(',');
  return codings[codings.length - 1]!.trim() === 'chunked';
}

/** Longest chunk-size line (extensions included). */
const MAX_LINE_BYTES = 4096;
/** Largest trailer section, and most fields in it: trailers are read and dropped, never unbounded. */
const MAX_TRAILER_BYTES = 16 * 1024;
const MAX_TRAILERS = 32;
/** Fields that frame or route a message may not come as trailers (RFC 9110 §6.5.1; llhttp refuses them too). */
const FORBIDDEN_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host']);

/**
 * The scanner's states: a named graph in the spirit of llhttp's, one byte at a time outside the
 * chunk data (sizes, extensions and trailers are short), in bulk inside it.
 */
const enum State {
  /** Hex digits of the size; `digits` counts them. */
  Size,
  /** A chunk extension's name (after ';'). */
  ExtName,
  /** The first character of an extension's value (after '='). */
  ExtValueStart,
  ExtToken,
  ExtQuoted,
  /** After a backslash inside a quoted value. */
  ExtQuotedPair,
  /** After a quoted value's closing quote: ';' or the end of the line. */
  ExtAfterQuoted,
  /** CR seen at the end of the size line. */
  SizeLf,
  Data,
  DataCr,
  DataLf,
  /** The start of a trailer field line, or the final CRLF. */
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  TrailerEndLf,
  Done,
  Stopped,
}

const CR = 13;
const LF = 10;
const SEMI = 59;
const EQUALS = 61;
const QUOTE = 34;
const BACKSLASH = 92;
const COLON = 58;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Field value characters: HTAB, SP, VCHAR and obs-text (no CTL, no DEL). */
const isValueChar = (c: number) => c === 9 || (c >= 0x20 && c !== 0x7f);
/** qdtext: HTAB, SP, VCHAR except '"' and '\', and obs-text. */
const isQdText = (c: number) => c === 9 || c === 32 || c === 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80;

/**
 * Decodes (or, without `onData`, only delimits) a chunked body, strictly by the grammar of RFC 9112
 * §7.1: `1*HEXDIG *( ";" token [ "=" ( token / quoted-string ) ] ) CRLF`, no whitespace anywhere in
 * the size line (llhttp refuses it too: "5 ;x" or "a " are read differently by lenient peers),
 * chunk data followed by exactly CRLF, and a trailer section of well-formed field lines (at most
 * MAX_TRAILERS, MAX_TRAILER_BYTES) ended by CRLF. Bare CR or LF anywhere is an error: a byte that
 * one parser takes for a line end and another does not is how requests are smuggled.
 */
export class ChunkedDecoder {
  private state = State.Size;
  private remaining = 0;
  private digits = 0;
  /** Bytes of the current size line, or of the trailer section. */
  private lineBytes = 0;
  /** Characters of the current extension or trailer name. */
  private nameLength = 0;
  private trailers = 0;
  /** The current trailer name, lower-cased (kept only while it could be a forbidden one). */
  private trailerName = '';

  /** `onData` receives chunk data (decoded mode); leave it undefined to only find the end. */
  constructor(private readonly onData?: (buf: Buffer, start: number, end: number) => void) {}

  reset(): void {
    this.state = State.Size;
    this.remaining = 0;
    this.digits = 0;
    this.lineBytes = 0;
    this.nameLength = 0;
    this.trailers = 0;
  }

  get done(): boolean {
    return this.state === State.Done;
  }

  /** No more callbacks (the consumer went away during one). */
  stop(): void {
    this.state = State.Stopped;
  }

  private get stopped(): boolean {
    return this.state === State.Stopped;
  }

  /** Scans `buf[pos, len)`; returns where it stopped (at the end of the body, or `len`). Throws ChunkedError. */
  execute(buf: Buffer, pos: number, len: number): number {
    while (pos < len) {
      const state = this.state;
      if (state === State.Data) {
        const n = Math.min(this.remaining, len - pos);
        if (this.onData) {
          this.onData(buf, pos, pos + n);
          if (this.stopped) return len;
        }
        pos += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = State.DataCr;
        continue;
      }
      if (state === State.Done || state === State.Stopped) return pos;
      const c = buf[pos]!;
      pos++;
      if (state <= State.SizeLf && ++this.lineBytes > MAX_LINE_BYTES) throw new ChunkedError('chunk size line too long');
      if (state >= State.TrailerStart && ++this.lineBytes > MAX_TRAILER_BYTES) throw new ChunkedError('trailer section too large');
      switch (state) {
        case State.Size: {
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > 12) throw new ChunkedError('chunk size too large');
            this.remaining = this.remaining * 16 + v;
          } else if (this.digits === 0) throw new ChunkedError('invalid chunk size');
          else if (c === CR) this.state = State.SizeLf;
          else if (c === SEMI) this.startName(State.ExtName);
          else throw new ChunkedError('invalid chunk size');
          break;
        }
        case State.ExtName:
          if (TCHAR[c]) this.nameLength++;
          else if (this.nameLength === 0) throw new ChunkedError('invalid chunk extension');
          else if (c === EQUALS) this.state = State.ExtValueStart;
          else if (c === SEMI) this.startName(State.ExtName);
          else if (c === CR) this.state = State.SizeLf;
          else throw new ChunkedError('invalid chunk extension');
          break;
        case State.ExtValueStart:
          if (c === QUOTE) this.state = State.ExtQuoted;
          else if (TCHAR[c]) this.state = State.ExtToken;
          else throw new ChunkedError('invalid chunk extension value');
          break;
        case State.ExtToken:
          if (TCHAR[c]) break;
          if (c === SEMI) this.startName(State.ExtName);
          else if (c === CR) this.state = State.SizeLf;
          else throw new ChunkedError('invalid chunk extension value');
          break;
        case State.ExtQuoted:
          if (c === QUOTE) this.state = State.ExtAfterQuoted;
          else if (c === BACKSLASH) this.state = State.ExtQuotedPair;
          else if (!isQdText(c)) throw new ChunkedError('invalid chunk extension value');
          break;
        case State.ExtQuotedPair:
          if (!isValueChar(c)) throw new ChunkedError('invalid chunk extension value');
          this.state = State.ExtQuoted;
          break;
        case State.ExtAfterQuoted:
          if (c === SEMI) this.startName(State.ExtName);
          else if (c === CR) this.state = State.SizeLf;
          else throw new ChunkedError('invalid chunk extension');
          break;
        case State.SizeLf:
          if (c !== LF) throw new ChunkedError('invalid chunk size line');
          this.digits = 0;
          this.lineBytes = 0;
          this.state = this.remaining === 0 ? State.TrailerStart : State.Data;
          break;
        case State.DataCr:
          if (c !== CR) throw new ChunkedError('missing CRLF after chunk data');
          this.state = State.DataLf;
          break;
        case State.DataLf:
          if (c !== LF) throw new ChunkedError('missing CRLF after chunk data');
          this.state = State.Size;
          this.lineBytes = 0;
          break;
        case State.TrailerStart:
          if (c === CR) this.state = State.TrailerEndLf;
          else if (TCHAR[c]) {
            if (++this.trailers > MAX_TRAILERS) throw new ChunkedError('too many trailer fields');
            this.nameLength = 1;
            this.trailerName = String.fromCharCode(c >= 65 && c <= 90 ? c | 0x20 : c);
            this.state = State.TrailerName;
          } else throw new ChunkedError('invalid trailer field');
          break;
        case State.TrailerName:
          if (TCHAR[c]) {
            if (++this.nameLength <= 17) this.trailerName += String.fromCharCode(c >= 65 && c <= 90 ? c | 0x20 : c);
          } else if (c === COLON) {
            if (this.nameLength <= 17 && FORBIDDEN_TRAILERS.has(this.trailerName)) throw new ChunkedError(`${this.trailerName} is not allowed as a trailer field`);
            this.state = State.TrailerValue;
          } else throw new ChunkedError('invalid trailer field name');
          break;
        case State.TrailerValue:
          if (c === CR) this.state = State.TrailerLf;
          else if (!isValueChar(c)) throw new ChunkedError('invalid character in a trailer field');
          break;
        case State.TrailerLf:
          if (c !== LF) throw new ChunkedError('invalid trailer line end');
          this.state = State.TrailerStart;
          break;
        case State.TrailerEndLf:
          if (c !== LF) throw new ChunkedError('invalid end of chunked body');
          this.state = State.Done;
          return pos;
        default:
          return pos - 1;
      }
    }
    return pos;
  }

  private startName(next: State): void {
    this.nameLength = 0;
    this.state = next;
  }
}
