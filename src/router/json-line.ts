/**
 * Writes a JSON line straight into a byte buffer: constant parts copied from pre-encoded bytes,
 * numbers as digits, strings as their bytes (escaped only when they need it). Nothing is
 * allocated per line, so a line per request adds no garbage for the collector to chase.
 */

/** Beyond this a piece is copied by `set()` (measured: 40-60 bytes is where the two cost the same). */
const LONG_PIECE_BYTES = 40;

/**
 * Pre-encoded constant text (keys and punctuation). A short piece is copied as little-endian
 * 32-bit words through a DataView (a few instructions for four bytes, where V8's byte-copy loop
 * takes ~27 a byte); a long one by `set()`, whose flat ~220 instructions are then the cheaper.
 */
export class Piece {
  readonly words: Uint32Array;
  readonly tail: Uint8Array;
  /** The whole text, for `set()`; set only when the piece is long (LONG_PIECE_BYTES). */
  readonly bytes: Uint8Array | undefined;

  constructor(bytes: Buffer) {
    const n = bytes.length >> 2;
    this.words = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.words[i] = bytes.readUInt32LE(i * 4);
    this.tail = Uint8Array.from(bytes.subarray(n * 4));
    this.bytes = bytes.length > LONG_PIECE_BYTES ? Uint8Array.from(bytes) : undefined;
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
const INT32_MAX = 0x7fffffff;

/** Digits of a non-negative int32 in base 10. */
function decimalDigits(v: number): number {
  if (v < 100000) return v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : v < 10000 ? 4 : 5;
  return v < 1000000 ? 6 : v < 10000000 ? 7 : v < 100000000 ? 8 : v < 1000000000 ? 9 : 10;
}

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
    const bytes = p.bytes;
    if (bytes !== undefined) {
      this._buf.set(bytes, this.at);
      this.at += bytes.length;
      return;
    }
    const view = this.view;
    let at = this.at;
    const words = p.words;
    for (let i = 0; i < words.length; i++, at += 4) view.setUint32(at, words[i]!, true);
    const tail = p.tail;
    const buf = this._buf;
    for (let i = 0; i < tail.length; i++) buf[at++] = tail[i]!;
    this.at = at;
  }

  /**
   * An integer. Up to 2^31 - 1 in int32 arithmetic, where V8 turns a division by a constant into a
   * multiplication (a double division, as Math.floor(m / 10), costs ~20 cycles a digit); larger
   * ones (bytes of a very long stream) take the double path.
   */
  int(n: number): void {
    const buf = this._buf;
    if (n < 0) {
      buf[this.at++] = MINUS;
      n = -n;
    }
    if (n > INT32_MAX) return this.bigInt(n, 10);
    let v = n | 0;
    let at = this.at + decimalDigits(v);
    this.at = at;
    do {
      const q = (v / 10) | 0;
      buf[--at] = ZERO + (v - q * 10);
      v = q;
    } while (v !== 0);
  }

  /** An integer from 0 to 999 as exactly three digits (the milliseconds of a time). */
  digits3(n: number): void {
    const buf = this._buf;
    const at = this.at;
    const hundreds = (n / 100) | 0;
    const rest = n - hundreds * 100;
    const tens = (rest / 10) | 0;
    buf[at] = ZERO + hundreds;
    buf[at + 1] = ZERO + tens;
    buf[at + 2] = ZERO + (rest - tens * 10);
    this.at = at + 3;
  }

  /** A positive integer in base 36 (lower case), as Number.prototype.toString(36) writes it. */
  base36(n: number): void {
    if (n > INT32_MAX) return this.bigInt(n, 36);
    const buf = this._buf;
    let v = n | 0;
    let digits = 0;
    for (let m = v; m !== 0; m = (m / 36) | 0) digits++;
    let at = this.at + digits;
    this.at = at;
    do {
      const q = (v / 36) | 0;
      const d = v - q * 36;
      buf[--at] = d < 10 ? ZERO + d : LOWER_A - 10 + d;
      v = q;
    } while (v !== 0);
  }

  /** A positive integer beyond int32 in base 10 or 36, in double arithmetic. */
  private bigInt(n: number, base: number): void {
    const buf = this._buf;
    let digits = 0;
    for (let m = n; m >= 1; m = Math.floor(m / base)) digits++;
    let at = this.at + digits;
    this.at = at;
    for (let m = n; m >= 1; m = Math.floor(m / base)) {
      const d = m % base;
      buf[--at] = d < 10 ? ZERO + d : LOWER_A - 10 + d;
    }
  }

  /** A number with two decimals at most (milliseconds), as JSON.stringify(Math.round(v * 100) / 100) writes it. */
  fixed2(v: number): void {
    let hundredths = Math.round(v * 100);
    const buf = this._buf;
    if (hundredths < 0) {
      buf[this.at++] = MINUS;
      hundredths = -hundredths;
    }
    // past int32 (~248 days in milliseconds): the whole part by the double path, the fraction as below
    const whole = hundredths > INT32_MAX ? Math.floor(hundredths / 100) : ((hundredths | 0) / 100) | 0;
    let frac = hundredths > INT32_MAX ? hundredths % 100 : (hundredths | 0) - whole * 100;
    this.int(whole);
    if (frac === 0) return;
    const tens = (frac / 10) | 0;
    buf[this.at++] = DOT;
    buf[this.at++] = ZERO + tens;
    frac -= tens * 10;
    if (frac !== 0) buf[this.at++] = ZERO + frac;
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
