/**
 * The chunked transfer coding (RFC 9112 §7.1), scanned incrementally: chunk sizes, extensions,
 * data and trailers, split across reads anywhere. Used for request bodies (server) and response
 * bodies (router upstream). In decoded mode the chunk data is reported; a relay that forwards the
 * framed bytes as they are only needs to know where the body ends.
 */

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

/** Longest chunk-size line (extensions included) and largest trailer section. */
const MAX_LINE_BYTES = 4096;

const enum State {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerLine,
  TrailerEndLf,
  Done,
  Stopped,
}

const CR = 13;
const LF = 10;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export class ChunkedDecoder {
  private state = State.Size;
  private remaining = 0;
  private digits = 0;
  private lineBytes = 0;

  /** `onData` receives chunk data (decoded mode); leave it undefined to only find the end. */
  constructor(private readonly onData?: (buf: Buffer, start: number, end: number) => void) {}

  reset(): void {
    this.state = State.Size;
    this.remaining = 0;
    this.digits = 0;
    this.lineBytes = 0;
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
      switch (this.state) {
        case State.Size: {
          const c = buf[pos]!;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > 12) throw new ChunkedError('chunk size too large');
            this.remaining = this.remaining * 16 + v;
          } else if (this.digits === 0) throw new ChunkedError('invalid chunk size');
          else if (c === CR) this.state = State.SizeLf;
          else if (c === 59 /* ; */ || c === 32 || c === 9) this.state = State.Ext;
          else throw new ChunkedError('invalid chunk size');
          pos++;
          break;
        }
        case State.Ext: {
          const cr = buf.indexOf(CR, pos);
          const stop = cr === -1 || cr >= len ? len : cr;
          this.lineBytes += stop - pos;
          if (this.lineBytes > MAX_LINE_BYTES) throw new ChunkedError('chunk extension too long');
          pos = stop;
          if (stop < len) {
            this.state = State.SizeLf;
            pos++;
          }
          break;
        }
        case State.SizeLf:
          if (buf[pos] !== LF) throw new ChunkedError('invalid chunk size line');
          pos++;
          this.digits = 0;
          this.lineBytes = 0;
          this.state = this.remaining === 0 ? State.TrailerStart : State.Data;
          break;
        case State.Data: {
          const n = Math.min(this.remaining, len - pos);
          if (this.onData) {
            this.onData(buf, pos, pos + n);
            if (this.stopped) return len;
          }
          pos += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = State.DataCr;
          break;
        }
        case State.DataCr:
          if (buf[pos] !== CR) throw new ChunkedError('missing CRLF after chunk data');
          pos++;
          this.state = State.DataLf;
          break;
        case State.DataLf:
          if (buf[pos] !== LF) throw new ChunkedError('missing CRLF after chunk data');
          pos++;
          this.state = State.Size;
          break;
        case State.TrailerStart:
          if (buf[pos] === CR) {
            this.state = State.TrailerEndLf;
            pos++;
          } else this.state = State.TrailerLine;
          break;
        case State.TrailerLine: {
          const lf = buf.indexOf(LF, pos);
          const stop = lf === -1 || lf >= len ? len : lf + 1;
          this.lineBytes += stop - pos;
          if (this.lineBytes > MAX_LINE_BYTES) throw new ChunkedError('trailer section too large');
          pos = stop;
          if (lf !== -1 && lf < len) this.state = State.TrailerStart;
          break;
        }
        case State.TrailerEndLf:
          if (buf[pos] !== LF) throw new ChunkedError('invalid end of chunked body');
          this.state = State.Done;
          return pos + 1;
        default:
          return pos;
      }
    }
    return pos;
  }
}
