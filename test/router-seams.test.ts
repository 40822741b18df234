/**
 * The seams between the router and its neighbours, byte by byte: what a backend receives for a
 * chunked client request, and what one failed attempt costs when a backend closes before answering.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from './helpers/test.js';
import { http, servedBy, startMocks, startService, waitFor, writeStaticServices, type RunningService } from './helpers/services.js';

interface SeenRequest {
  head: string;
  body: Buffer;
}

/**
 * A scripted HTTP/1.1 backend on raw sockets: records every request's head and body as received,
 * answers GET /health with 200, and other requests with `answer` (or closes the connection
 * without a byte when `answer` returns 'close'; `{ raw }` is written as it is).
 */
async function scriptedBackend(answer: (req: SeenRequest) => string | 'close' | { raw: string }): Promise<{ server: Server; port: number; seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  const server = createServer((socket: Socket) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        const req = { head, body: buf.subarray(end + 4, end + 4 + length) };
        buf = buf.subarray(end + 4 + length);
        if (head.startsWith('GET /health ')) {
          socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
          continue;
        }
        seen.push(req);
        const out = answer(req);
        if (out === 'close') return void socket.destroy();
        if (typeof out === 'object') return void socket.write(out.raw, 'latin1');
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(out)}\r\n\r\n${out}`);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, seen };
}

/** Sends raw bytes to the router and returns everything it answers until it closes or `until` matches. */
function rawExchange(port: number, bytes: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (until.test(text)) {
        s.destroy();
        resolve(text);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(text));
    s.write(bytes, 'latin1');
  });
}

const started: Array<RunningService | Server> = [];
after(async () => {
  for (const s of started) 'proc' in s ? await s.stop() : s.close();
});

describe('router seams', () => {
  it('forwards a chunked request body with one content-length and no transfer-encoding', async () => {
    const backend = await scriptedBackend((req) => JSON.stringify({ echoed: req.body.length, system_fingerprint: 'scripted' }));
    started.push(backend.server);
    const file = await writeStaticServices([{ name: 'scripted', port: backend.port, models: ['m'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--health-interval', '3600']);
    started.push(router);
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'chunked hello' }] });
    const chunks = [body.slice(0, 10), body.slice(10, 11), body.slice(11)];
    const wire =
      'POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: router.example\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nX-Forwarded-For: 10.0.0.9\r\nConnection: keep-alive, x-drop-me\r\nX-Drop-Me: 1\r\n\r\n' +
      chunks.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('') +
      '0\r\n\r\n';
    const answer = await rawExchange(router.port, wire, /\r\n\r\n\{.*\}$/s);
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.equal(backend.seen.length, 1);
    const { head, body: received } = backend.seen[0]!;
    assert.equal(received.toString(), body, 'the body arrives de-chunked, byte for byte');
    const lines = head.split('\r\n');
    assert.equal(lines[0], 'POST /v1/chat/completions?x=1 HTTP/1.1');
    const headers = lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as const);
    const named = (n: string) => headers.filter(([k]) => k === n).map(([, v]) => v);
    assert.deepEqual(named('content-length'), [String(Buffer.byteLength(body))], 'exactly one content-length, the body\'s');
    assert.deepEqual(named('transfer-encoding'), [], 'the client\'s framing is not forwarded next to our content-length');
    assert.deepEqual(named('host'), [`127.0.0.1:${backend.port}`]);
    assert.deepEqual(named('x-forwarded-for'), ['10.0.0.9, 127.0.0.1']);
    assert.equal(named('x-request-id').length, 1);
    assert.deepEqual(named('x-drop-me'), [], 'headers named in Connection are hop-by-hop');
    assert.deepEqual(named('connection'), []);
    assert.deepEqual(named('content-type'), ['application/json']);
  });

  it('a backend that accepts and closes before answering costs exactly one failed attempt; the client gets 200', async () => {
    const closing = await scriptedBackend(() => 'close');
    started.push(closing.server);
    const [good] = await startMocks([{ models: 'm', name: 'good' }]);
    started.push(good!);
    const file = await writeStaticServices([
      { name: 'a-closing', port: closing.port, models: ['m'] },
      { name: 'b-good', port: good!.port, models: ['m'] },
    ]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--health-interval', '3600', '--max-errors', '100']);
    started.push(router);
    const services = async () => Object.fromEntries((await http('GET', `${router.url}/services`)).body.services.map((s: any) => [s.name, s]));
    await waitFor(async () => (await services())['a-closing'].response_time > 0, 'first health check');
    for (let i = 0; i < 6; i++) {
      const r = await http('POST', `${router.url}/v1/chat/completions`, { body: { model: 'm', messages: [{ role: 'user', content: `hi ${i}` }] } });
      assert.equal(r.status, 200);
      assert.equal(servedBy(r.body), 'good');
    }
    const s = await services();
    assert.ok(closing.seen.length >= 1, 'round robin sent some requests to the closing backend');
    assert.equal(s['a-closing'].request_count, closing.seen.length, 'one attempt per request that reached it');
    assert.equal(s['a-closing'].error_count, closing.seen.length, 'each counted as exactly one failure');
    assert.equal(s['b-good'].request_count, 6);
    assert.equal(s['b-good'].error_count, 0);
  });

  it('a malformed answer is a 502 and is not retried on another backend (the backend may have run it)', async () => {
    const splitting = await scriptedBackend(() => ({ raw: 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok' }));
    started.push(splitting.server);
    const [good] = await startMocks([{ models: 'm', name: 'good-2' }]);
    started.push(good!);
    const file = await writeStaticServices([
      { name: 'a-splitting', port: splitting.port, models: ['m'] },
      { name: 'b-good', port: good!.port, models: ['m'] },
    ]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--health-interval', '3600', '--max-errors', '100']);
    started.push(router);
    let got502 = 0;
    for (let i = 0; i < 4 && got502 === 0; i++) {
      const r = await http('POST', `${router.url}/v1/chat/completions`, { body: { model: 'm', messages: [] } });
      if (r.status === 502) {
        got502++;
        assert.equal(r.body.error.code, 'upstream_error');
        assert.equal(r.headers.get('set-cookie'), null, 'nothing of the malformed answer is relayed');
      } else assert.equal(servedBy(r.body), 'good-2');
    }
    assert.equal(got502, 1, 'round robin reached the splitting backend');
    const s = Object.fromEntries((await http('GET', `${router.url}/services`)).body.services.map((x: any) => [x.name, x]));
    assert.equal(s['a-splitting'].request_count, splitting.seen.length);
    assert.equal(s['b-good'].request_count + s['a-splitting'].request_count, splitting.seen.length + (await http('GET', `${good!.url}/health`)).body.requests, 'one attempt per request');
    await waitFor(() => router.logs.some((l) => l.msg === 'backend sent a malformed response' && l.backend === 'a-splitting'), 'logged');
  });

  it('a backend whose body breaks in the same read as its head gives the client a 502, not an empty reply', async () => {
    const broken = await scriptedBackend(() => ({ raw: 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' }));
    started.push(broken.server);
    const file = await writeStaticServices([{ name: 'broken', port: broken.port, models: ['m'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--health-interval', '3600']);
    started.push(router);
    const r = await http('POST', `${router.url}/v1/chat/completions`, { body: { model: 'm', messages: [], stream: true } });
    assert.equal(r.status, 502);
    assert.equal(r.body.error.code, 'upstream_error');
  });
});
