import type { IncomingMessage } from 'node:http';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus those the proxy sets itself; never forwarded. */
const REQUEST_SKIP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'x-forwarded-for']);
const RESPONSE_SKIP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade']);

/** Extra hop-by-hop names a peer listed in its Connection header. */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (!value) return undefined;
  const names = value.toLowerCase().split(',').map((t) => t.trim()).filter((t) => t && t !== 'close' && t !== 'keep-alive');
  return names.length ? new Set(names) : undefined;
}

/**
 * Request headers for the upstream as a flat [name, value, ...] list: hop-by-hop removed,
 * X-Forwarded-For appended with the client's address, X-Request-Id kept or generated.
 */
export function upstreamRequestHeaders(req: IncomingMessage, requestId: string): string[] {
  const raw = req.rawHeaders;
  const extra = connectionTokens(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (REQUEST_SKIP.has(lower) || extra?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  const prior = req.headers['x-forwarded-for'];
  const peer = req.socket.remoteAddress ?? '';
  out.push('x-forwarded-for', prior ? `${prior}, ${peer}` : peer);
  if (req.headers['x-request-id'] === undefined) out.push('x-request-id', requestId);
  return out;
}

/** Response headers for the client from undici's raw list, hop-by-hop removed. */
export function downstreamResponseHeaders(raw: Buffer[], requestId: string | undefined): string[] {
  const out: string[] = [];
  let extra: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    if (lower === 'connection') extra = connectionTokens(value);
    if (RESPONSE_SKIP.has(lower)) continue;
    out.push(name, value);
  }
  if (extra) {
    for (let i = out.length - 2; i >= 0; i -= 2) if (extra.has(out[i]!.toLowerCase())) out.splice(i, 2);
  }
  if (requestId !== undefined) out.push('x-request-id', requestId);
  return out;
}
