import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from './helpers/test.js';
import type { UpstreamConnection, UpstreamHandler } from '../src/router/upstream/connection.js';
import { UpstreamPool } from '../src/router/upstream/pool.js';
import { MAX_HEAD_BYTES, ResponseParser, type ParserSink, type ResponseHead } from '../src/router/upstream/response-parser.js';

/** Records what the parser reports. */
class Recorder implements ParserSink {
  head: ResponseHead | undefined;
  body: Buffer[] = [];
  ends = 0;
  constructor(private readonly raw = false) {}
  parser = new ResponseParser(this);
  onHead(head: ResponseHead): void {
    this.head = head;
    if (this.raw) this.parser.rawChunked = true;
  }
  onBody(data: Buffer, start: number, end: number): void {
    this.body.push(Buffer.from(data.subarray(start, end)));
  }
  onEnd(): void {
    this.ends++;
  }
  get text(): string {
    return Buffer.concat(this.body).toString('latin1');
  }
}

/** Feeds `bytes` in pieces cut at `cuts`; returns the bytes consumed in all. */
function feed(r: Recorder, bytes: string, cuts: number[] = []): number {
  const all = Buffer.from(bytes, 'latin1');
  let used = 0;
  let from = 0;
  for (const to of [...cuts, all.length]) {
    // a larger scratch buffer like the shared read buffer: only [0, len) is valid
    const scratch = Buffer.alloc(to - from + 7, 0x78);
    all.copy(scratch, 0, from, to);
    used += r.parser.execute(scratch, to - from);
    from = to;
  }
  return used;
}

const CHUNKED = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n' + '6\r\ndata: \r\n' + '5;ext=1\r\nhello\r\n' + 'A\r\n0123456789\r\n' + '0\r\n\r\n';
const CHUNKED_BODY = CHUNKED.slice(CHUNKED.indexOf('\r\n\r\n') + 4);

describe('upstream response parser', () => {
  it('parses a length-delimited response split at every position', () => {
    const text = 'HTTP/1.1 201 Created\r\nContent-Length: 11\r\nX-A: b\r\n\r\nhello world';
    for (let cut = 1; cut < text.length; cut++) {
      const r = new Recorder();
      r.parser.reset(false);
      assert.equal(feed(r, text, [cut]), text.length);
      assert.equal(r.head?.status, 201);
      assert.deepEqual(r.head?.headers, ['Content-Length', '11', 'X-A', 'b']);
      assert.equal(r.head?.framing, 'length');
      assert.equal(r.head?.keepAlive, true);
      assert.equal(r.text, 'hello world', `cut at ${cut}`);
      assert.equal(r.ends, 1);
      assert.equal(r.parser.done, true);
    }
  });

  it('parses a large head that arrives a byte at a time (after 1xx), and refuses one over the limit', () => {
    let text = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n';
    while (text.length < 60_000) text += `x-filler-${text.length}: ${'v'.repeat(80)}\r\n`;
    text += 'Content-Length: 2\r\n\r\nok';
    const r = new Recorder();
    r.parser.reset(false);
    const cuts = Array.from({ length: text.length - 1 }, (_, i) => i + 1);
    assert.equal(feed(r, text, cuts), text.length);
    assert.equal(r.head?.status, 200);
    assert.equal(r.head?.headers.length, 2 * (text.match(/\r\nx-filler-/g)!.length + 1));
    assert.equal(r.text, 'ok');
    assert.equal(r.ends, 1);
    const big = new Recorder();
    big.parser.reset(false);
    const over = `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_HEAD_BYTES)}`;
    assert.throws(() => feed(big, over, [10, 100, 1000, 40_000]), /larger than/);
  });

  it('refuses a head with a bare LF or CR before it is complete, not only at the headers timeout', () => {
    for (const [text, message] of [
      ['HTTP/1.1 200 OK\nContent-Length: 2\n', /LF without CR/],
      ['HTTP/1.1 200 OK\r\nX: 1\rY: 2', /CR without LF/],
    ] as const) {
      for (const cuts of [[], [5], [16, 17]]) {
        const r = new Recorder();
        r.parser.reset(false);
        assert.throws(() => feed(r, text, cuts), (err: Error & { code?: string }) => message.test(err.message) && err.code === 'UPSTREAM_PROTOCOL', `${JSON.stringify(text)} cut at ${cuts}`);
      }
    }
    // a CR as the last byte read so far is not judged yet
    const r = new Recorder();
    r.parser.reset(false);
    assert.equal(feed(r, 'HTTP/1.1 204 No Content\r', []), 24);
    assert.equal(r.parser.execute(Buffer.from('\n\r\n'), 3), 3);
    assert.equal(r.head?.status, 204);
  });

  it('decodes a chunked body, and passes it framed in raw mode, split anywhere', () => {
    for (let a = 1; a < CHUNKED.length; a += 3) {
      for (const b of [a + 1, a + 5, CHUNKED.length - 1]) {
        if (b <= a || b >= CHUNKED.length) continue;
        const decoded = new Recorder();
        decoded.parser.reset(false);
        assert.equal(feed(decoded, CHUNKED, [a, b]), CHUNKED.length);
        assert.equal(decoded.text, 'data: hello0123456789', `decoded, cuts ${a},${b}`);
        assert.equal(decoded.ends, 1);
        const raw = new Recorder(true);
        raw.parser.reset(false);
        feed(raw, CHUNKED, [a, b]);
        assert.equal(raw.text, CHUNKED_BODY, `raw, cuts ${a},${b}`);
        assert.equal(raw.ends, 1);
      }
    }
  });

  it('skips trailers when decoding and keeps them when relaying raw', () => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n';
    const decoded = new Recorder();
    decoded.parser.reset(false);
    feed(decoded, text, [text.length - 8]);
    assert.equal(decoded.text, 'abc');
    assert.equal(decoded.ends, 1);
    const raw = new Recorder(true);
    raw.parser.reset(false);
    feed(raw, text, [text.length - 8]);
    assert.equal(raw.text, '3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n');
  });

  it('skips 1xx interim responses', () => {
    const r = new Recorder();
    r.parser.reset(false);
    const text = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
    assert.equal(feed(r, text, [10, 30]), text.length);
    assert.equal(r.head?.status, 200);
    assert.equal(r.text, 'ok');
  });

  it('knows responses without a body: HEAD, 204, 304', () => {
    for (const [text, head] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', true],
      ['HTTP/1.1 204 No Content\r\n\r\n', false],
      ['HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n', false],
    ] as const) {
      const r = new Recorder();
      r.parser.reset(head);
      assert.equal(feed(r, text), text.length);
      assert.equal(r.head?.framing, 'none');
      assert.equal(r.ends, 1);
      assert.equal(r.head?.keepAlive, true);
    }
  });

  it('reads a close-delimited body until the connection closes', () => {
    const r = new Recorder();
    r.parser.reset(false);
    feed(r, 'HTTP/1.1 200 OK\r\n\r\nsome bytes');
    assert.equal(r.head?.framing, 'close');
    assert.equal(r.head?.keepAlive, false);
    assert.equal(r.ends, 0);
    assert.equal(r.parser.finish(), true);
    assert.equal(r.text, 'some bytes');
    assert.equal(r.ends, 1);
  });

  it('follows the keep-alive rules of HTTP/1.0 and 1.1', () => {
    const cases: Array<[string, boolean, number]> = [
      ['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n', false, 0],
      ['HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n', true, 5000],
      ['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', false, 0],
    ];
    for (const [text, keepAlive, hint] of cases) {
      const r = new Recorder();
      r.parser.reset(false);
      feed(r, text);
      assert.equal(r.head?.keepAlive, keepAlive, text);
      assert.equal(r.head?.keepAliveHintMs, hint, text);
      assert.equal(r.ends, 1, text);
    }
  });

  it('reports bytes after the end of the response as not consumed', () => {
    const r = new Recorder();
    r.parser.reset(false);
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA';
    assert.equal(feed(r, text), text.length - 5);
  });

  it('rejects malformed responses with a clear message', () => {
    const bad: Array<[string, RegExp]> = [
      ['HTTX/1.1 200 OK\r\n\r\n', /status line/],
      ['HTTP/1.1 2x0 OK\r\n\r\n', /status line/],
      ['HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n', /header line/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n', /invalid content-length/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', /both transfer-encoding and content-length/],
      ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /invalid content-length/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /chunk size/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX', /CRLF after chunk/],
      ['HTTP/1.1 101 Switching Protocols\r\n\r\n', /protocol switch/],
      ['HTTP/1.1 200 OK\r\nX-Split: a\nInjected: 1\r\n\r\n', /LF without CR/],
      [`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}`, /larger than/],
    ];
    for (const [text, message] of bad) {
      const r = new Recorder();
      r.parser.reset(false);
      assert.throws(() => feed(r, text), (err: Error & { code?: string }) => message.test(err.message) && err.code === 'UPSTREAM_PROTOCOL', text.slice(0, 40));
    }
  });
});

/** A scripted HTTP/1.1 server on a raw socket: `answer` decides what to write for each request. */
async function scriptedServer(answer: (socket: Socket, request: string, n: number) => void): Promise<{ server: Server; port: number; connections: () => number }> {
  let connections = 0;
  let requests = 0;
  const server = createServer((socket) => {
    connections++;
    let buffered = '';
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
      if (buffered.length < end + 4 + length) return;
      const request = buffered.slice(0, end + 4 + length);
      buffered = buffered.slice(end + 4 + length);
      answer(socket, request, ++requests);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => server.close());
  return { server, port: (server.address() as { port: number }).port, connections: () => connections };
}

interface Outcome {
  status?: number;
  body: string;
  error?: Error & { code?: string };
}

function send(pool: UpstreamPool, head: string, body?: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { body: '' };
    const handler: UpstreamHandler = {
      onHeaders: (h: ResponseHead, _conn: UpstreamConnection) => (out.status = h.status),
      onData: (d, s, e) => ((out.body += d.toString('latin1', s, e)), true),
      onComplete: () => resolve(out),
      onError: (err) => ((out.error = err), resolve(out)),
    };
    pool.request(head, body, head.startsWith('HEAD'), handler);
  });
}

const OPTS = { connectTimeoutMs: 1000, headersTimeoutMs: 300, idleTimeoutMs: 300, keepAliveMs: 5000 };

describe('upstream connection pool', () => {
  it('reuses one keep-alive connection and sends the request bytes exactly', async () => {
    const seen: string[] = [];
    const s = await scriptedServer((socket, request) => {
      seen.push(request);
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const pool = new UpstreamPool({ host: '127.0.0.1', port: s.port, tls: false }, OPTS);
    const big = Buffer.alloc(40_000, 0x61);
    for (const body of [Buffer.from('{"a":1}'), big, undefined]) {
      const head = `POST /v1/x HTTP/1.1\r\nhost: h\r\ncontent-length: ${body?.length ?? 0}\r\n\r\n`;
      const r = await send(pool, head, body);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'ok');
      assert.equal(seen.at(-1), head + (body?.toString('latin1') ?? ''));
    }
    assert.equal(s.connections(), 1);
    assert.equal(pool.size, 1);
    await pool.close();
  });

  it('does not reuse a connection the server closes or marks close, and honours Keep-Alive hints', async () => {
    const s = await scriptedServer((socket, _request, n) => {
      if (n === 1) socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na');
      else if (n === 2) socket.end('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb');
      else socket.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 1\r\n\r\nc');
    });
    const pool = new UpstreamPool({ host: '127.0.0.1', port: s.port, tls: false }, OPTS);
    const get = 'GET / HTTP/1.1\r\nhost: h\r\n\r\n';
    assert.equal((await send(pool, get)).body, 'a');
    const second = await send(pool, get);
    assert.equal(second.body, 'b');
    // the server's FIN takes the idle connection out of the pool
    for (let i = 0; i < 200 && pool.size > 0; i++) await new Promise((r) => setImmediate(r));
    assert.equal(pool.size, 0);
    assert.equal((await send(pool, get)).body, 'c');
    assert.equal(s.connections(), 3);
    // a 1 s hint leaves no time to reuse the connection safely: it was closed at once
    assert.equal(pool.size, 0);
    await pool.close();
  });

  it('fails with the right codes: refused, headers timeout, idle timeout, cut-off body, garbage', async () => {
    const s = await scriptedServer((socket, request) => {
      if (request.startsWith('GET /silent')) return;
      if (request.startsWith('GET /stall')) return void socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
      if (request.startsWith('GET /cut')) return void socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
      socket.write('SPDY/9 nonsense\r\n\r\n');
    });
    const pool = new UpstreamPool({ host: '127.0.0.1', port: s.port, tls: false }, OPTS);
    const req = (path: string) => send(pool, `GET ${path} HTTP/1.1\r\nhost: h\r\n\r\n`);
    assert.equal((await req('/silent')).error?.code, 'UPSTREAM_HEADERS_TIMEOUT');
    const stall = await req('/stall');
    assert.equal(stall.error?.code, 'UPSTREAM_BODY_TIMEOUT');
    assert.equal(stall.body, 'abc');
    const cut = await req('/cut');
    assert.equal(cut.error?.code, 'UPSTREAM_CLOSED');
    assert.equal((await req('/garbage')).error?.code, 'UPSTREAM_PROTOCOL');
    await pool.close();

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = new UpstreamPool({ host: '127.0.0.1', port, tls: false }, OPTS);
    assert.equal((await send(refused, 'GET / HTTP/1.1\r\nhost: h\r\n\r\n')).error?.code, 'ECONNREFUSED');
    await refused.close();
  });

  it('aborts a request and closes its connection; a stale handle cannot touch the next request', async () => {
    let sockets = 0;
    const s = await scriptedServer((socket, request) => {
      sockets++;
      if (request.startsWith('GET /hang')) return;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    const pool = new UpstreamPool({ host: '127.0.0.1', port: s.port, tls: false }, { ...OPTS, headersTimeoutMs: 10_000 });
    const errors: Error[] = [];
    const h: UpstreamHandler = { onHeaders: () => undefined, onData: () => true, onComplete: () => undefined, onError: (e) => errors.push(e) };
    const conn = pool.request('GET /hang HTTP/1.1\r\nhost: h\r\n\r\n', undefined, false, h);
    for (let i = 0; i < 200 && sockets === 0; i++) await new Promise((r) => setTimeout(r, 5));
    conn.abort(h);
    assert.equal((errors[0] as Error & { code?: string }).code, 'UPSTREAM_ABORTED');
    const ok = await send(pool, 'GET / HTTP/1.1\r\nhost: h\r\n\r\n');
    assert.equal(ok.body, 'x');
    conn.abort(h); // stale: must not fail anything
    assert.equal(errors.length, 1);
    assert.equal(s.connections(), 2);
    await pool.close();
  });
});
