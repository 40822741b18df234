import type { Http1Request } from '../common/http1/server.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus those the proxy sets itself; never forwarded. */
const REQUEST_SKIP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'x-forwarded-for']);
const RESPONSE_SKIP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade']);

/** Extra hop-by-hop names a peer listed in its Connection header. */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (!value) return undefined;
  const names = value.toLowerCase().split(',').map((t) => t.trim()).filter((t) => t && t !== 'close' && t !== 'keep-alive');
  return names.length ? new Set(names) : undefined;
}

/** Methods whose requests carry a body by definition: they always get a Content-Length. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * The header lines (each ending in CRLF) of the request to the upstream: hop-by-hop removed,
 * X-Forwarded-For appended with the client's address, X-Request-Id kept or generated, and the
 * Content-Length of the buffered body; `strip` names more headers to drop (the client's API key).
 * Values are Node's latin1 strings, so writing them as latin1 sends the client's bytes unchanged.
 */
export function upstreamHeaderLines(req: Http1Request, requestId: string, bodyLength: number, strip?: ReadonlySet<string>): string {
  const raw = req.rawHeaders;
  const names = req.headerNames;
  const tokens = connectionTokens(req.headers.connection);
  // one optional set in the loop, as without `strip`
  const extra = strip === undefined ? tokens : tokens === undefined ? strip : new Set([...tokens, ...strip]);
  let out = '';
  for (let i = 0; i < names.length; i++) {
    const lower = names[i]!;
    if (REQUEST_SKIP.has(lower) || extra?.has(lower)) continue;
    out += `${raw[2 * i]!}: ${raw[2 * i + 1]!}\r\n`;
  }
  const prior = req.headers['x-forwarded-for'];
  const peer = req.remoteAddress;
  out += `x-forwarded-for: ${prior ? `${prior}, ${peer}` : peer}\r\n`;
  if (req.headers['x-request-id'] === undefined) out += `x-request-id: ${requestId}\r\n`;
  if (bodyLength > 0 || BODY_METHODS.has(req.method)) out += `content-length: ${bodyLength}\r\n`;
  return out;
}

/**
 * Response headers for the client from the upstream's flat list (`names`: its names lower-cased), hop-by-hop removed. Content-Length
 * is dropped when the body is not length-delimited (it would contradict the framing we send).
 * `requestId` (the id we generated) is added only when the backend did not answer with one: a
 * backend that echoes the id it was sent would otherwise give the client two.
 */
export function downstreamResponseHeaders(raw: string[], names: string[], requestId: string | undefined, keepLength: boolean): string[] {
  const out: string[] = [];
  let extra: Set<string> | undefined;
  let hasId = false;
  for (let i = 0; i < names.length; i++) {
    const lower = names[i]!;
    const name = raw[2 * i]!;
    const value = raw[2 * i + 1]!;
    if (lower === 'connection') extra = connectionTokens(value);
    if (RESPONSE_SKIP.has(lower) || (!keepLength && lower === 'content-length')) continue;
    if (lower === 'x-request-id') hasId = true;
    out.push(name, value);
  }
  if (extra) {
    for (let i = out.length - 2; i >= 0; i -= 2) {
      const lower = out[i]!.toLowerCase();
      if (!extra.has(lower)) continue;
      out.splice(i, 2);
      if (lower === 'x-request-id') hasId = false;
    }
  }
  if (requestId !== undefined && !hasId) out.push('x-request-id', requestId);
  return out;
}
