/**
 * The fake fleet of `npm run bench:scale`: one process answering for thousands of backends. It
 * listens on 0.0.0.0 at PORT and PORT+1, so every 127.x.y.z address reaches it (all of 127/8 is
 * loopback on Linux) and each registered (address, port) is a distinct backend to the registry and
 * the router. PORT answers /health, /v1/models and a minimal /v1/chat/completions; PORT+1 answers
 * /health as a babysitter would. Health answers close their connection (probes come every interval,
 * longer than any keep-alive), so a probe round does not pin one descriptor per backend here.
 *
 *   node dist/bench/scale-backend.js PORT
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65534) {
  process.stderr.write('usage: scale-backend.js PORT (listens on PORT and PORT+1)\n');
  process.exit(2);
}

const HEALTH = '{"status":"ok"}';
const MODELS = '{"object":"list","data":[]}';
const CHAT = JSON.stringify({
  id: 'chatcmpl-scale',
  object: 'chat.completion',
  created: 0,
  model: 'fake',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});

function send(res: ServerResponse, status: number, body: string, close: boolean): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(close ? { connection: 'close' } : {}) });
  res.end(body);
}

function handler(babysitter: boolean) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    // the body is read to its end before answering, as a real server would
    req.resume();
    req.once('end', () => {
      if (path === '/health') return send(res, 200, HEALTH, true);
      if (babysitter) return send(res, 404, '{"error":"not found"}', true);
      if (path === '/v1/models' || path === '/models') return send(res, 200, MODELS, false);
      if (path === '/v1/chat/completions' && req.method === 'POST') return send(res, 200, CHAT, false);
      send(res, 404, '{"error":"not found"}', false);
    });
  };
}

let acceptErrors = 0;
for (const [p, babysitter] of [
  [port, false],
  [port + 1, true],
] as const) {
  const server = createServer({ keepAliveTimeout: 120_000 }, handler(babysitter));
  // a probe round of the registry arrives as one burst of connections
  server.listen({ port: p, host: '0.0.0.0', backlog: 65_535 });
  let listening = false;
  server.once('listening', () => (listening = true));
  server.on('error', (err) => {
    // out of descriptors while accepting: counted by the prober as a failed probe, not fatal here
    if (listening) return void (acceptErrors++ === 0 && process.stderr.write(`scale-backend: port ${p}: ${err.message}\n`));
    process.stderr.write(`scale-backend: port ${p}: ${err.message}\n`);
    process.exit(1);
  });
}
process.on('SIGTERM', () => process.exit(0));
