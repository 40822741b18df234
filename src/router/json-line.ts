/**
 * Writes a JSON line straight into a byte buffer: constant parts copied from pre-encoded bytes,
 * numbers as digits, strings as their bytes (escaped only when they need it). Nothing is
 * allocated per line, so a line per request adds no garbage for the collector to chase.
 */

/**
 * Pre-encoded constant text (keys and punctuation), split into little-endian 32-bit words and a
 * tail of up to 3 bytes: V8 compiles a byte-copy loop to ~27 instructions a byte and `set()`
 * costs a flat ~220, while a word through a DataView is a few instructions for four bytes.
 */
export class Piece {
  readonly words: Uint32Array;
  readonly tail: Uint8Array;

  constructor(bytes: Buffer) {
    const n = bytes.length >> 2;
    this.words = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.words[i] = bytes.readUInt32LE(i * 4);
    this.tail = Uint8Array.from(bytes.subarray(n * 4));
  }
}

export const text = (s: string): Piece => new Piece(Buffer.from(s, 'latin1'));

/** A JSON string's encoding (quotes included; null for undefined) as written by JsonLineWriter.str. */
export const jsonString = (s: string | undefined): string => (s === undefined ? 'null' : JSON.stringify(s));

/** Text holding JSON strings of any characters, as UTF-8. */
export const utf8Text = (s: string): Piece => new Piece(Buffer.from(s, 'utf8'));

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const MINUS = 0x2d;
const ZERO = 0x30;
const LOWER_A = 0x61;
const NULL_BYTES = text('null');

export class JsonLineWriter {
  /** Next free byte of `buf`. */
  at = 0;

  private _buf!: Buffer;
  private view!: DataView;

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  get buf(): Buffer {
    return this._buf;
  }

  set buf(b: Buffer) {
    this._buf = b;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  raw(p: Piece): void {
    const view = this.view;
    let at = this.at;
    const words = p.words;
    for (let i = 0; i < words.length; i++, at += 4) view.setUint32(at, words[i]!, true);
    const tail = p.tail;
    const buf = this._buf;
    for (let i = 0; i < tail.length; i++) buf[at++] = tail[i]!;
    this.at = at;
  }

  /** A non-negative or negative integer. */
  int(n: number): void {
    const buf = this._buf;
    if (n < 0) {
      buf[this.at++] = MINUS;
      n = -n;
    }
    if (n < 10) {
      buf[this.at++] = ZERO + n;
      return;
    }
    let digits = 0;
    for (let m = n; m >= 1; m = Math.floor(m / 10)) digits++;
    let at = this.at + digits;
    this.at = at;
    for (let m = n; m >= 1; m = Math.floor(m / 10)) buf[--at] = ZERO + (m % 10);
  }

  /** A positive integer in base 36 (lower case), as Number.prototype.toString(36) writes it. */
  base36(n: number): void {
    const buf = this._buf;
    let digits = 0;
    for (let m = n; m >= 1; m = Math.floor(m / 36)) digits++;
    let at = this.at + digits;
    this.at = at;
    for (let m = n; m >= 1; m = Math.floor(m / 36)) {
      const d = m % 36;
      buf[--at] = d < 10 ? ZERO + d : LOWER_A - 10 + d;
    }
  }

  /** A number with two decimals at most (milliseconds), as JSON.stringify(Math.round(v * 100) / 100) writes it. */
  fixed2(v: number): void {
    const hundredths = Math.round(v * 100);
    const whole = Math.trunc(hundredths / 100);
    let frac = Math.abs(hundredths % 100);
    if (hundredths < 0 && whole === 0) this._buf[this.at++] = MINUS;
    this.int(whole);
    if (frac === 0) return;
    this._buf[this.at++] = DOT;
    this._buf[this.at++] = ZERO + Math.floor(frac / 10);
    frac %= 10;
    if (frac !== 0) this._buf[this.at++] = ZERO + frac;
  }

  /**
   * A JSON string. Printable ASCII without `"` and `\` (ids, model names, addresses, almost always)
   * is copied as it is; anything else goes through JSON.stringify (the caller left room: worstBytes).
   */
  str(s: string | undefined): void {
    if (s === undefined) return this.raw(NULL_BYTES);
    const buf = this._buf;
    let at = this.at;
    buf[at++] = QUOTE;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === QUOTE || c === BACKSLASH) {
        this.at += buf.write(JSON.stringify(s), this.at);
        return;
      }
      buf[at++] = c;
    }
    buf[at++] = QUOTE;
    this.at = at;
  }
}

/** Bytes a string takes at most in the line: 6 per UTF-16 unit when every one is escaped (`\u001f`), plus quotes. */
export const worstBytes = (s: string | undefined): number => (s === undefined ? 4 : s.length * 6 + 2);
