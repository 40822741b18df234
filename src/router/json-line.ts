/**
 * Writes a JSON line straight into a byte buffer: constant parts copied from pre-encoded bytes,
 * numbers as digits, strings as their bytes (escaped only when they need it). Nothing is
 * allocated per line, so a line per request adds no garbage for the collector to chase.
 */

/** Pre-encoded constant text (keys and punctuation). */
export const text = (s: string): Uint8Array => Buffer.from(s, 'latin1');

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const MINUS = 0x2d;
const ZERO = 0x30;
const NULL_BYTES = text('null');

export class JsonLineWriter {
  /** Next free byte of `buf`. */
  at = 0;

  constructor(public buf: Buffer) {}

  raw(bytes: Uint8Array): void {
    const buf = this.buf;
    let at = this.at;
    // a copy loop costs about a nanosecond a byte, set() a flat ~15 ns: the loop only for short keys
    if (bytes.length > 16) {
      buf.set(bytes, at);
      at += bytes.length;
    } else for (let i = 0; i < bytes.length; i++) buf[at++] = bytes[i]!;
    this.at = at;
  }

  /** A non-negative or negative integer. */
  int(n: number): void {
    const buf = this.buf;
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

  /** A number with two decimals at most (milliseconds), as JSON.stringify(Math.round(v * 100) / 100) writes it. */
  fixed2(v: number): void {
    const hundredths = Math.round(v * 100);
    const whole = Math.trunc(hundredths / 100);
    let frac = Math.abs(hundredths % 100);
    if (hundredths < 0 && whole === 0) this.buf[this.at++] = MINUS;
    this.int(whole);
    if (frac === 0) return;
    this.buf[this.at++] = DOT;
    this.buf[this.at++] = ZERO + Math.floor(frac / 10);
    frac %= 10;
    if (frac !== 0) this.buf[this.at++] = ZERO + frac;
  }

  /**
   * A JSON string. Printable ASCII without `"` and `\` (ids, model names, addresses, almost always)
   * is copied as it is; anything else goes through JSON.stringify (the caller left room: worstBytes).
   */
  str(s: string | undefined): void {
    if (s === undefined) return this.raw(NULL_BYTES);
    const buf = this.buf;
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
