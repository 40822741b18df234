/**
 * Parsing of an HTTP/1.x request head (RFC 9112 §3, §5, §6): request line, header fields and the
 * body framing they announce. Anything ambiguous is refused (400) rather than guessed, because a
 * proxy that reads framing differently from its backend invites request smuggling.
 */

import { endsChunked } from './chunked.js';

export interface RequestHead {
  method: string;
  url: string;
  httpVersionMajor: number;
  httpVersionMinor: number;
  /** Flat [name, value, ...] as received. */
  rawHeaders: string[];
  /** Lower-case names; repeated fields joined with ", " (as node:http does for most names). */
  headers: Record<string, string>;
  /** -1 for a chunked body; otherwise the Content-Length (0 without one). */
  contentLength: number;
  /** The client wants this connection kept open after the response. */
  keepAlive: boolean;
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

/** RFC 9110 token characters (method and field names). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values: visible characters, spaces, tabs and obs-text; no CR, LF or NUL. */
export const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** Parses the head text (everything before the blank line, leading empty lines already skipped). */
export function parseRequestHead(text: string): RequestHead {
  const lineEnd = text.indexOf('\r\n');
  const requestLine = lineEnd === -1 ? text : text.slice(0, lineEnd);
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.lastIndexOf(' ');
  if (sp1 <= 0 || sp2 === sp1) throw new RequestError(400, 'malformed request line');
  const method = requestLine.slice(0, sp1);
  const url = requestLine.slice(sp1 + 1, sp2);
  const version = requestLine.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new RequestError(400, 'malformed request method');
  if (url.length === 0 || url.includes(' ') || BAD_VALUE.test(url)) throw new RequestError(400, 'malformed request target');
  if (version.length !== 8 || !version.startsWith('HTTP/') || version.charCodeAt(6) !== 46) throw new RequestError(400, 'malformed HTTP version');
  const major = version.charCodeAt(5) - 48;
  const minor = version.charCodeAt(7) - 48;
  if (major !== 1 || (minor !== 0 && minor !== 1)) throw new RequestError(505, `HTTP version ${version.slice(5)} not supported`);

  const rawHeaders: string[] = [];
  const headers: Record<string, string> = {};
  let contentLength = 0;
  let hasLength = false;
  let chunked = false;
  let hasTransferEncoding = false;
  let start = lineEnd === -1 ? text.length : lineEnd + 2;
  while (start < text.length) {
    let end = text.indexOf('\r\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 2;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new RequestError(400, line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9 ? 'obsolete header line folding' : 'malformed header line');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new RequestError(400, `malformed header name ${JSON.stringify(name.slice(0, 64))}`);
    const value = line.slice(colon + 1).trim();
    if (BAD_VALUE.test(value)) throw new RequestError(400, `invalid character in header ${name}`);
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    const prior = headers[lower];
    headers[lower] = prior === undefined ? value : `${prior}, ${value}`;
    if (lower === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) throw new RequestError(400, 'invalid Content-Length');
      const n = Number(value);
      if (hasLength && n !== contentLength) throw new RequestError(400, 'conflicting Content-Length values');
      hasLength = true;
      contentLength = n;
    } else if (lower === 'transfer-encoding') {
      hasTransferEncoding = true;
      chunked = endsChunked(value);
    }
  }
  if (hasTransferEncoding) {
    if (hasLength) throw new RequestError(400, 'both Transfer-Encoding and Content-Length');
    if (!chunked) throw new RequestError(501, 'unsupported Transfer-Encoding');
    if (minor === 0) throw new RequestError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    contentLength = -1;
  }
  if (minor === 1 && headers.host === undefined) throw new RequestError(400, 'missing Host header');
  const connection = headers.connection?.toLowerCase();
  const keepAlive = minor === 1 ? !(connection !== undefined && hasToken(connection, 'close')) : connection !== undefined && hasToken(connection, 'keep-alive');
  const expect = headers.expect;
  const expectContinue = expect !== undefined && expect.toLowerCase() === '100-continue';
  return { method, url, httpVersionMajor: major, httpVersionMinor: minor, rawHeaders, headers, contentLength, keepAlive, expectContinue };
}

function hasToken(list: string, token: string): boolean {
  if (list === token) return true;
  for (const t of list.split(',')) if (t.trim() === token) return true;
  return false;
}
