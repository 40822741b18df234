/**
 * The character classes of HTTP/1.1 (RFC 9110 §5.6, RFC 9112), shared by the request parser, the
 * chunked decoder and the router's response parser so that every side draws the same lines.
 */

/** tchar: the characters of a token (methods, field names, codings, chunk extension names). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A character that may not appear in a field value: any CTL but HTAB (CR, LF and NUL among them), and DEL. */
export const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** The latin1 text of bytes[from, to): Buffer's own decoder, without toString's argument handling, on any Uint8Array. */
export const latin1 = (bytes: Uint8Array, from: number, to: number): string => Buffer.prototype.latin1Slice.call(bytes, from, to);

/** tchar as a table by character code, for byte-at-a-time scanners. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

/**
 * Removes optional whitespace (SP and HTAB only, RFC 9110 §5.6.3) around a field value. JavaScript's
 * trim() also removes \v, \f, \r, \n, NBSP and more: `Transfer-Encoding: \vchunked` or a bare CR at
 * the end of a line would then pass as valid.
 */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}
