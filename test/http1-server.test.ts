import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from './helpers/test.js';
import { Http1Server, type Http1Request } from '../src/common/http1/server.js';
import type { Http1Response } from '../src/common/http1/response.js';
import { waitFor } from './helpers/services.js';

/** Sends raw bytes on a fresh connection; resolves with all bytes received once `done` says so or the server closes. */
function exchange(port: number, bytes: string | string[], done: (text: string) => boolean = () => false): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    const parts = Array.isArray(bytes) ? [...bytes] : [bytes];
    const finish = () => {
      socket.destroy();
      resolve({ text, closed });
    };
    socket.on('connect', () => {
      socket.write(parts.shift()!);
      // later parts go out once the server answered something (e.g. 100 Continue)
    });
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (parts.length > 0 && text.includes('100 Continue')) socket.write(parts.shift()!);
      if (done(text)) finish();
    });
    socket.on('end', () => {
      closed = true;
      finish();
    });
    socket.on('error', finish);
  });
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

describe('http1 server', () => {
  let server: Http1Server;
  let port = 0;
  const gone: string[] = [];
  const errors: number[] = [];
  const handler = (req: Http1Request, res: Http1Response): void => {
    if (req.url === '/throw') throw new Error('handler bug');
    if (req.url === '/hold') {
      res.onClose = () => gone.push(req.url);
      return;
    }
    if (req.url === '/stream') {
      res.writeHead(200, ['content-type', 'text/plain']);
      res.write('one ');
      setTimeout(() => res.end('two'), 5);
      return;
    }
    if (req.url === '/cased') {
      // framing and connection names in any case are the server's to judge: no second length, date or connection
      res.writeHead(200, ['CONTENT-LENGTH', '2', 'Date', 'Thu, 01 Jan 2026 00:00:00 GMT', 'Keep-Alive', 'timeout=1', 'CONNECTION', 'x', 'Dates', 'y'], false, true);
      return res.end('ok');
    }
    if (req.url === '/nocontent') {
      res.writeHead(204, {});
      return res.end();
    }
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: req.body?.toString('utf8') ?? null, keepAlive: req.keepAlive });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  before(async () => {
    server = new Http1Server(handler, { maxBodyBytes: 1000, maxHeadBytes: 2048, onError: (s) => errors.push(s) });
    await new Promise<void>((resolve) => server.server.listen(0, '127.0.0.1', resolve));
    port = (server.server.address() as { port: number }).port;
  });
  after(() => server.close(100));

  it('answers pipelined requests in order on one connection', async () => {
    const req = (path: string, body = '') => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const { text } = await exchange(port, req('/a', 'first') + req('/b', 'second') + req('/c'), (t) => statuses(t).length === 3);
    assert.deepEqual(statuses(text), [200, 200, 200]);
    const bodies = [...text.matchAll(/\{.*?"keepAlive":true\}/g)].map((m) => JSON.parse(m[0]) as { url: string; body: string | null });
    assert.deepEqual(bodies.map((b) => [b.url, b.body]), [['/a', 'first'], ['/b', 'second'], ['/c', null]]);
  });

  it('decodes chunked bodies and answers Expect: 100-continue', async () => {
    const head = 'POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n';
    const { text } = await exchange(port, [head, '5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: 1\r\n\r\n'], (t) => t.includes('"keepAlive"'));
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
    assert.match(text, /"body":"hello world"/);
  });

  it('refuses malformed or ambiguous requests with a JSON error and closes', async () => {
    const cases: Array<[string, number, RegExp]> = [
      ['GARBAGE\r\n\r\n', 400, /request line/],
      ['GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505, /not supported/],
      ['GET / HTTP/1.1\r\n\r\n', 400, /Host/],
      ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /both/],
      ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n', 400, /conflicting/],
      ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n', 400, /Content-Length/],
      ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 400, /final coding/],
      ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501, /unsupported transfer coding/],
      ['GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n', 400, /folding/],
      ['GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n', 400, /header name/],
      ['GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n', 400, /invalid character/],
      [`GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(3000)}\r\n\r\n`, 431, /larger than 2048/],
      ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n', 413, /exceeds 1000 bytes/],
      ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, /chunked/],
    ];
    for (const [bytes, status, message] of cases) {
      const { text, closed } = await exchange(port, bytes);
      assert.deepEqual(statuses(text), [status], JSON.stringify(bytes.slice(0, 40)));
      assert.match(text, /connection: close/);
      const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: string };
      assert.match(body.error, message);
      assert.equal(closed, true);
    }
    assert.ok(errors.includes(413) && errors.includes(431));
  });

  it('refuses a chunked body that grows past the limit', async () => {
    const chunk = `${(600).toString(16)}\r\n${'a'.repeat(600)}\r\n`;
    const { text } = await exchange(port, `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}${chunk}0\r\n\r\n`);
    assert.deepEqual(statuses(text), [413]);
  });

  it('frames responses: HEAD and 204 without body, chunked for 1.1, close-delimited for 1.0', async () => {
    const head = await exchange(port, 'HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.includes('\r\n\r\n'));
    assert.match(head.text, /content-length: \d+/);
    assert.equal(head.text.slice(head.text.indexOf('\r\n\r\n') + 4), '');
    const none = await exchange(port, 'GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.includes('\r\n\r\n'));
    assert.deepEqual(statuses(none.text), [204]);
    assert.doesNotMatch(none.text, /transfer-encoding/);
    const chunked = await exchange(port, 'GET /stream HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.endsWith('0\r\n\r\n'));
    assert.match(chunked.text, /transfer-encoding: chunked\r\n[\s\S]*\r\n\r\n4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n$/);
    const old = await exchange(port, 'GET /stream HTTP/1.0\r\n\r\n');
    assert.match(old.text, /connection: close/);
    assert.ok(old.text.endsWith('\r\n\r\none two'));
    assert.equal(old.closed, true);
    const cased = await exchange(port, 'GET /cased HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.endsWith('ok'));
    const casedHead = cased.text.slice(0, cased.text.indexOf('\r\n\r\n')).toLowerCase();
    assert.equal(casedHead.match(/\r\ndate: /g)?.length, 1, 'the given Date is the only one');
    assert.doesNotMatch(casedHead, /transfer-encoding|keep-alive|connection/, 'a given length: not chunked; hop-by-hop names dropped');
    assert.match(casedHead, /\r\ndates: y/);
    const oldKeep = await exchange(port, 'GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', (t) => t.includes('"keepAlive":true'));
    assert.match(oldKeep.text, /connection: keep-alive/);
    assert.equal(oldKeep.closed, false);
  });

  it('tells the handler when the client goes away, and survives a handler that throws', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.on('connect', resolve));
    socket.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 20));
    socket.destroy();
    await waitFor(() => gone.includes('/hold'), 'onClose for the held request');
    const thrown = await exchange(port, 'GET /throw HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.includes('}'));
    assert.deepEqual(statuses(thrown.text), [500]);
    assert.match(thrown.text, /handler bug/);
    const ok = await exchange(port, 'GET /fine HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.includes('}'));
    assert.deepEqual(statuses(ok.text), [200]);
  });
});

describe('http1 server: bounds on what a client can make it hold', () => {
  const listen = async (server: Http1Server) => {
    await new Promise<void>((r) => server.server.listen(0, '127.0.0.1', r));
    return (server.server.address() as { port: number }).port;
  };
  const post = (path: string, body: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

  it('holds bodies within maxBufferedBytes: a second body waits until the first request ends', async () => {
    const held: Array<{ url: string; res: Http1Response }> = [];
    const server = new Http1Server((req, res) => held.push({ url: req.url, res }), { maxBodyBytes: 1024 * 1024, maxBufferedBytes: 100 * 1024 });
    const port = await listen(server);
    try {
      // one body larger than the whole budget is still received: alone, it cannot stall anyone
      const first = exchange(port, post('/first', 'a'.repeat(150 * 1024)), (t) => t.includes('done'));
      await waitFor(() => held.length === 1, 'first dispatched');
      assert.ok(server.buffered >= 150 * 1024);
      const second = exchange(port, post('/second', 'b'.repeat(50 * 1024)), (t) => t.includes('done'));
      // the second body's bytes arrive but are not taken: nothing is dispatched while the first holds the budget
      await waitFor(() => server.buffered >= 150 * 1024, 'still held');
      assert.deepEqual(held.map((h) => h.url), ['/first']);
      held[0]!.res.end('done');
      await waitFor(() => held.length === 2, 'second dispatched once the first ended');
      assert.equal(held[1]!.url, '/second');
      held[1]!.res.end('done');
      await Promise.all([first, second]);
      await waitFor(() => server.buffered === 0, 'every byte given back');
    } finally {
      await server.close(100);
    }
  });

  it('stops reading pipelined requests while the client does not read the answers', async () => {
    let handled = 0;
    const big = 'x'.repeat(64 * 1024);
    const server = new Http1Server((_req, res) => {
      handled++;
      res.writeHead(200, { 'content-length': big.length });
      res.end(big);
    }, { maxBodyBytes: 1000 });
    const port = await listen(server);
    const socket = connect(port, '127.0.0.1');
    try {
      await new Promise((r) => socket.on('connect', r));
      socket.pause(); // a client that never reads
      const total = 2000;
      socket.write(`GET /p HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(total));
      // the answers fill the socket and the kernel buffers, then the server stops dispatching
      let last = -1;
      await waitFor(() => {
        const stable = handled > 0 && handled === last;
        last = handled;
        return stable;
      }, 'dispatching stops', 10_000, 300);
      assert.ok(handled < total / 4, `${handled} of ${total} requests answered to a client that reads nothing`);
      // once the client reads, every request is answered, in order
      let received = 0;
      socket.on('data', (d: Buffer) => (received += d.length));
      socket.resume();
      await waitFor(() => handled === total, 'all answered once the client reads', 20_000);
      await waitFor(() => received >= total * big.length, 'all bytes received', 20_000);
    } finally {
      socket.destroy();
      await server.close(100);
    }
  });

  it('does not let empty lines keep an idle connection open past the keep-alive timeout', async () => {
    const server = new Http1Server((_req, res) => res.end('ok'), { maxBodyBytes: 1000, keepAliveTimeoutMs: 300 });
    const port = await listen(server);
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('error', () => undefined);
    const tick = setInterval(() => socket.write('\r\n'), 100);
    try {
      await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open after 5 s of empty lines')), 5000))]);
    } finally {
      clearInterval(tick);
      socket.destroy();
      await server.close(100);
    }
  });
});
