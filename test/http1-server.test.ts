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
      ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 501, /Transfer-Encoding/],
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
