/**
 * The yardstick of `npm run bench:abuse`: node:http (llhttp) doing the client-side job of the
 * router's HTTP/1.1 server with the same limits. Heads up to 32 KiB (node's default is 16 KiB),
 * bodies buffered whole up to --max-body (413 beyond, announced or counted), the same timeouts and
 * connection cap, and /health and /stats answers shaped like the router's so that pipelined answers
 * weigh the same. A complete body gets a small local answer: it is not a proxy, and the abuse
 * patterns never finish a body anyway.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'max-body': { type: 'string', default: String(32 * 1024 * 1024) },
  },
});
const maxBody = Number(values['max-body']);

function json(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(close ? { connection: 'close' } : {}) });
  res.end(text);
}

function memoryMb(): Record<string, number> {
  return Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 1e5) / 10]));
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const path = url.split('?')[0];
  if (path === '/health') {
    json(res, 200, { status: 'healthy', router: 'running', healthy_services: '1/1', registry_url: null, message: null, timestamp: Math.floor(Date.now() / 1000) });
    return;
  }
  if (path === '/stats') {
    json(res, 200, { total_services: 1, healthy_services: 1, registry_url: null, in_flight: 0, memory_mb: memoryMb(), services: [] });
    return;
  }
  if (Number(req.headers['content-length'] ?? 0) > maxBody) {
    json(res, 413, { error: `request body exceeds --max-body (${maxBody} bytes)` }, true);
    return;
  }
  // buffered like the router's server: the parts as they come, one concatenation at the end
  const parts: Buffer[] = [];
  let bytes = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    if (refused) return;
    bytes += chunk.length;
    if (bytes > maxBody) {
      refused = true;
      parts.length = 0;
      json(res, 413, { error: `request body exceeds --max-body (${maxBody} bytes)` }, true);
      return;
    }
    parts.push(chunk);
  });
  req.on('end', () => {
    if (refused) return;
    const body = Buffer.concat(parts, bytes);
    json(res, 200, { object: 'bench.echo', bytes: body.length });
  });
}

const server = createServer(
  { maxHeaderSize: 32 * 1024, headersTimeout: 66_000, requestTimeout: 300_000, keepAliveTimeout: 65_000, noDelay: true },
  handle,
);
server.maxConnections = 16_384;
server.listen(Number(values.port), values.host);
process.on('SIGTERM', () => process.exit(0));
