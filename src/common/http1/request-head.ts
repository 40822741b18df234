/**
 * Parsing of an HTTP/1.x request head (RFC 9112 §3, §5, §6; RFC 9110): request line, header fields
 * and the body framing they announce. Anything ambiguous is refused rather than guessed, because a
 * proxy that reads framing differently from its backend invites request smuggling. Every rule is a
 * named case in test/http1-rules.test.ts; every leniency is listed there too.
 */

import { FieldNames } from './field-names.js';
import { BAD_VALUE, latin1, TCHAR, TOKEN, trimOws } from './syntax.js';

export { BAD_VALUE } from './syntax.js';

export interface RequestHead {
  method: string;
  /** The target in origin-form (`/path?query`; absolute-form is turned into it), or `*` for OPTIONS. */
  url: string;
  httpVersionMajor: number;
  httpVersionMinor: number;
  /** Flat [name, value, ...] as received (values without surrounding whitespace). */
  rawHeaders: string[];
  /** Lower-case names; repeated fields joined with ", " (as node:http does for most names). */
  headers: Record<string, string>;
  /** The names of rawHeaders lower-cased, one a field (rawHeaders[2i] is headerNames[i] as sent). */
  headerNames: string[];
  /** -1 for a chunked body; otherwise the Content-Length (0 without one). */
  contentLength: number;
  /** The client wants this connection kept open after the response. */
  keepAlive: boolean;
  /** `Expect: 100-continue` was sent (the server answers it; the field is not passed on). */
  expectContinue: boolean;
}

/** A request the server must refuse, with the status to refuse it with. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * An origin-form target (RFC 9112 §3.2.1): "/" then visible ASCII except '#' (a fragment is never
 * sent). RFC 3986 allows fewer characters unencoded, but clients send '"', '<', '>', '[', ']',
 * '^', '`', '{', '|', '}' as they are and llhttp accepts them; never CTLs, spaces, DEL or bytes
 * above 0x7e.
 */
const ORIGIN_FORM = /^\/[!"$-~]*$/;
const ABSOLUTE_FORM = /^https?:\/\/([A-Za-z0-9\-._~!$&'()*+,;=%:[\]]+)([/?][!"$-~]*)?$/i;
/** Host (RFC 9110 §7.2): a reg-name or IPv4 address, or an IP literal in brackets; then an optional port. */
const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;
const CONTENT_LENGTH = /^[0-9]{1,15}$/;
/**
 * The methods passed on (RFC 9110 §9, plus PATCH). Others get 501 (§9.1): an unknown method is
 * more likely a misframed request ("helloGET" after a body of the wrong length) than a client's
 * wish, and llhttp refuses methods it does not know too. CONNECT is refused on its own (405).
 */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);

const HTAB = 9;
const LF = 10;
const CR = 13;
const SP = 32;
const COLON = 58;
const DEL = 127;

/**
 * Parses the head in `bytes[from, to)`: everything before the blank line, leading empty lines
 * already skipped. The fields are scanned in the bytes (a typed array read is a few instructions,
 * a string's charCodeAt in optimised code several more) and cut from the text.
 */
export function parseRequestHead(bytes: Uint8Array, from: number, to: number): RequestHead {
  const text = latin1(bytes, from, to);
  // Lines end in CRLF only. A lone CR or LF (a line end to some parsers, not to others) can only
  // land inside a line here, where the method, target, name and value checks all refuse it.
  const lineEnd = text.indexOf('\r\n');
  const requestLine = lineEnd === -1 ? text : text.slice(0, lineEnd);
  const { method, url, minor } = parseRequestLine(requestLine);
  const start = lineEnd === -1 ? text.length : lineEnd + 2;
  let fields = new Fields();
  // the usual head in one pass; anything it does not take is read again line by line, which
  // names the fault exactly as it always has
  if (!scanFields(bytes, from, text, start, fields)) readFields(text, start, (fields = new Fields()));
  const { rawHeaders, headers, headerNames } = fields;
  let contentLength = fields.contentLength;
  const transferEncoding = fields.transferEncoding;
  if (transferEncoding !== undefined) {
    if (fields.lengths > 0) throw new RequestError(400, 'both Transfer-Encoding and Content-Length');
    if (minor === 0) throw new RequestError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    checkTransferEncoding(transferEncoding);
    contentLength = -1;
  }
  if (minor === 1 && fields.hosts === 0) throw new RequestError(400, 'missing Host header');
  const connection = headers.connection?.toLowerCase();
  const keepAlive = minor === 1 ? !(connection !== undefined && hasToken(connection, 'close')) : connection !== undefined && hasToken(connection, 'keep-alive');
  let expectContinue = false;
  const expect = headers.expect;
  if (expect !== undefined) {
    // the server answers 100-continue itself: the expectation is met here, not passed on
    if (expect.toLowerCase() !== '100-continue') throw new RequestError(417, `unsupported expectation ${JSON.stringify(expect.slice(0, 64))}`);
    expectContinue = minor === 1;
    delete headers.expect;
    for (let i = headerNames.length - 1; i >= 0; i--) {
      if (headerNames[i] !== 'expect') continue;
      headerNames.splice(i, 1);
      rawHeaders.splice(2 * i, 2);
    }
  }
  return { method, url, httpVersionMajor: 1, httpVersionMinor: minor, rawHeaders, headers, headerNames, contentLength, keepAlive, expectContinue };
}

/** What the header fields say, gathered field by field. */
class Fields {
  readonly rawHeaders: string[] = [];
  readonly headers: Record<string, string> = {};
  readonly headerNames: string[] = [];
  contentLength = 0;
  lengths = 0;
  hosts = 0;
  transferEncoding: string | undefined = undefined;

  /** One field: its name as sent and lower-cased, its value without OWS, and whether its line holds an HTAB. */
  add(name: string, lower: string, value: string, tab: boolean): void {
    this.rawHeaders.push(name, value);
    this.headerNames.push(lower);
    const headers = this.headers;
    const prior = headers[lower];
    headers[lower] = prior === undefined ? value : `${prior}, ${value}`;
    if (lower.length === 4 && lower === 'host') {
      if (++this.hosts > 1) throw new RequestError(400, 'more than one Host header');
      if (!HOST_VALUE.test(value)) throw new RequestError(400, 'invalid Host header');
    } else if (lower.length === 14 && lower === 'content-length') {
      // framing fields take SP as whitespace, not HTAB: llhttp refuses "Content-Length:\t5" and a
      // peer that reads it differently from us must never see it
      if (!CONTENT_LENGTH.test(value) || tab) throw new RequestError(400, 'invalid Content-Length');
      const n = Number(value);
      // more than one, even equal, is refused as llhttp does (RFC 9110 §8.6 only allows recovering)
      if (++this.lengths > 1) throw new RequestError(400, n === this.contentLength ? 'more than one Content-Length' : 'conflicting Content-Length values');
      this.contentLength = n;
    } else if (lower.length === 17 && lower === 'transfer-encoding') {
      if (tab) throw new RequestError(400, 'malformed Transfer-Encoding');
      this.transferEncoding = this.transferEncoding === undefined ? value : `${this.transferEncoding}, ${value}`;
    }
  }
}

/**
 * The header lines in one pass over the bytes (`text` is the same bytes from `base`): token name,
 * colon, OWS, a value of field characters, CRLF. Returns false at the first thing out of the
 * ordinary (any fault, an obs-fold, a bare CR or LF, DEL), leaving the verdict to readFields. No
 * regular expression and no line strings: on a client's dozen fields this is several times faster.
 */
function scanFields(bytes: Uint8Array, base: number, text: string, at: number, fields: Fields): boolean {
  const end = base + text.length;
  let pos = base + at;
  while (pos < end) {
    const nameStart = pos;
    let hash = 0;
    let c = 0;
    while (pos < end && TCHAR[(c = bytes[pos]!)] === 1) {
      hash = (Math.imul(hash, 31) + c) | 0; // nextNameHash, inlined
      pos++;
    }
    if (pos === nameStart || pos === end || c !== COLON) return false;
    const name = NAMES.name(bytes, nameStart, pos, hash, text, base);
    const lower = NAMES.lower;
    pos++;
    let tab = false;
    while (pos < end && ((c = bytes[pos]!) === SP || c === HTAB)) {
      if (c === HTAB) tab = true;
      pos++;
    }
    const valueStart = pos;
    let valueEnd = pos;
    for (; pos < end; pos++) {
      c = bytes[pos]!;
      if (c > SP) {
        if (c === DEL) return false;
        valueEnd = pos + 1;
      } else if (c === HTAB) tab = true;
      else if (c !== SP) break;
    }
    // the line ends at the head's end or in CRLF; any other control character is a fault
    if (pos < end && (c !== CR || pos + 1 === end || bytes[pos + 1] !== LF)) return false;
    fields.add(name, lower, text.slice(valueStart - base, valueEnd - base), tab);
    pos += 2;
  }
  return true;
}

/** The header lines one at a time, each fault named (the path of anything scanFields refused). */
function readFields(text: string, start: number, fields: Fields): void {
  while (start < text.length) {
    let end = text.indexOf('\r\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 2;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new RequestError(400, line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9 ? 'obsolete header line folding' : 'malformed header line');
    const name = line.slice(0, colon);
    // no whitespace between name and colon (RFC 9112 §5.1): "Content-Length : 5" is refused
    if (!TOKEN.test(name)) throw new RequestError(400, `malformed header name ${JSON.stringify(name.slice(0, 64))}`);
    const value = trimOws(line.slice(colon + 1));
    if (BAD_VALUE.test(value)) throw new RequestError(400, `invalid character in header ${name}`);
    fields.add(name, name.toLowerCase(), value, line.includes('\t'));
  }
}

/** Request field names as clients send them (see FieldNames). */
const NAMES = new FieldNames();

/** `METHOD SP request-target SP HTTP/1.x`, single spaces; the target checked and turned into origin-form. */
function parseRequestLine(line: string): { method: string; url: string; minor: number } {
  const sp1 = line.indexOf(' ');
  const sp2 = line.lastIndexOf(' ');
  if (sp1 <= 0) throw new RequestError(400, 'malformed request line');
  // HTTP/0.9 ("GET /path", no version) has no headers, no status line: not spoken here
  if (sp2 === sp1) throw new RequestError(400, /^[A-Z]+ \/\S*$/.test(line) ? 'HTTP/0.9 requests are not supported' : 'malformed request line');
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  // a method of ours is a token: the pattern is for the others (refused below either way, 400 or 501)
  const known = METHODS.has(method);
  if (!known && !TOKEN.test(method)) throw new RequestError(400, 'malformed request method');
  if (version.length !== 8 || !version.startsWith('HTTP/') || version.charCodeAt(6) !== 46) throw new RequestError(400, 'malformed HTTP version');
  const major = version.charCodeAt(5) - 48;
  const minor = version.charCodeAt(7) - 48;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) throw new RequestError(400, 'malformed HTTP version');
  if (major !== 1 || (minor !== 0 && minor !== 1)) throw new RequestError(505, `HTTP version ${version.slice(5)} not supported`);
  if (!known && method !== 'CONNECT') throw new RequestError(501, `method ${JSON.stringify(method.slice(0, 32))} not implemented`);
  return { method, url: requestTarget(method, target), minor };
}

/** The target in origin-form (RFC 9112 §3.2): absolute-form becomes origin-form; `*` only for OPTIONS. */
function requestTarget(method: string, target: string): string {
  if (method === 'CONNECT') throw new RequestError(405, 'CONNECT is not supported (this is not a forward proxy)');
  if (target.charCodeAt(0) === 47 /* / */) {
    if (!ORIGIN_FORM.test(target)) throw new RequestError(400, 'malformed request target');
    return target;
  }
  if (target === '*') {
    if (method !== 'OPTIONS') throw new RequestError(400, `asterisk-form target with ${method}`);
    return target;
  }
  const absolute = ABSOLUTE_FORM.exec(target);
  if (absolute) return absolute[2] === undefined ? '/' : absolute[2].startsWith('?') ? `/${absolute[2]}` : absolute[2];
  throw new RequestError(400, 'malformed request target');
}

/**
 * Only `chunked`, once, is a transfer coding this server decodes (RFC 9112 §6.1, §6.3, §7). A
 * request whose final coding is not chunked has no knowable length: 400 (a MUST of §6.3). Another
 * coding before chunked ("gzip, chunked") would be dropped silently if we decoded only the chunks:
 * 501. Codings that are not tokens, or chunked twice, are malformed: 400.
 */
function checkTransferEncoding(value: string): void {
  const codings = value.split(',').map(trimOws);
  for (const c of codings) if (!TOKEN.test(c)) throw new RequestError(400, 'malformed Transfer-Encoding');
  const chunked = codings.filter((c) => c.toLowerCase() === 'chunked').length;
  if (chunked > 1) throw new RequestError(400, 'chunked applied more than once');
  if (codings[codings.length - 1]!.toLowerCase() !== 'chunked') throw new RequestError(400, 'Transfer-Encoding without chunked as the final coding');
  if (codings.length > 1) throw new RequestError(501, `unsupported transfer coding ${JSON.stringify(value.slice(0, 64))}`);
}

function hasToken(list: string, token: string): boolean {
  if (list === token) return true;
  if (!list.includes(token)) return false;
  for (const t of list.split(',')) if (trimOws(t) === token) return true;
  return false;
}
