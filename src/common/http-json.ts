import type { IncomingMessage } from 'node:http';

/** What sendJson needs of a response: node:http's ServerResponse and our Http1Response both fit. */
export interface JsonResponder {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(text: string): unknown;
}

/** Sends a JSON body with an explicit length (no chunked encoding for small control-plane answers). */
export function sendJson(res: JsonResponder, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Every error of our control-plane services: `{"error": "<message naming the problem>"}`. */
export function sendError(res: JsonResponder, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: message }, headers);
}

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds the limit of ${limit} bytes`);
  }
}

/**
 * Reads a request body of node:http (the registry's and babysitter's control plane) up to `limit`
 * bytes; rejects with BodyTooLargeError. Over the limit it rejects at once and keeps draining, up to
 * a bound, what the client still sends, so the 413 answer reaches a client that is still writing
 * instead of being lost in a connection reset.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // copied into one growing buffer: node:http hands over a Buffer per chunk of a chunked body,
    // and keeping them costs ~400 bytes per chunk whatever its size (one-byte chunks: 400x)
    let body = Buffer.alloc(0);
    let size = 0;
    let done = false;
    const drainCap = Math.max(limit * 8, 16 * 1024 * 1024);
    const tooLarge = () => {
      done = true;
      reject(new BodyTooLargeError(limit));
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) tooLarge();
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (done) {
        if (size > drainCap) req.socket.destroy();
        return;
      }
      if (size > limit) return tooLarge();
      if (size > body.length) {
        const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(size, body.length * 2, 4096)));
        body.copy(grown, 0, 0, size - chunk.length);
        body = grown;
      }
      chunk.copy(body, size - chunk.length);
    });
    req.on('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(body.subarray(0, size));
    });
  });
}

export type JsonParseResult = { ok: true; value: unknown } | { ok: false; error: string };

/** Parses a JSON body whatever its Content-Type says (curl -d sends form content types). */
export function parseJsonBody(body: Buffer): JsonParseResult {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) };
  } catch (err) {
    return { ok: false, error: `invalid JSON body: ${(err as Error).message}` };
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
