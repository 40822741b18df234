/**
 * The HTTP/1.1 server's rules as named cases, llhttp-style: bytes in, what comes out (the requests
 * the handler sees, or the status the server refuses with), and why. Each deliberate leniency is a
 * case too. The differential test (http1-differential) checks the same ground against llhttp.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { NAME_SLOTS, nextNameHash } from '../src/common/http1/field-names.js';
import { parseRequestHead } from '../src/common/http1/request-head.js';
import { Http1Server, type Http1Request } from '../src/common/http1/server.js';
import { after, before, describe, it } from './helpers/test.js';

interface Seen {
  method: string;
  url: string;
  body: string;
  headers: Record<string, string>;
}

/** What should happen: these requests reach the handler, or the server answers `status` and closes. */
type Expect = { requests: Array<Partial<Seen>> } | { status: number; message?: RegExp };

interface Rule {
  name: string;
  bytes: string | string[];
  expect: Expect;
  why: string;
}

const H = 'Host: x\r\n';

/** The named rules. Bytes are latin1; an array is written in separate writes. */
const RULES: Rule[] = [
  // ---- request line
  { name: 'simple GET', bytes: `GET /p?q=1 HTTP/1.1\r\n${H}\r\n`, expect: { requests: [{ method: 'GET', url: '/p?q=1' }] }, why: 'origin-form target' },
  { name: 'HTTP/1.0 without Host', bytes: 'GET / HTTP/1.0\r\n\r\n', expect: { requests: [{ url: '/' }] }, why: 'Host is required from HTTP/1.1 on' },
  { name: 'HTTP/0.9', bytes: 'GET /\r\n\r\n', expect: { status: 400, message: /HTTP\/0\.9/ }, why: 'no version, no headers: not HTTP/1.x; llhttp refuses it too' },
  { name: 'HTTP/2.0 line', bytes: `GET / HTTP/2.0\r\n${H}\r\n`, expect: { status: 505 }, why: 'a version we do not speak' },
  { name: 'version with letters', bytes: `GET / HTTP/1.x\r\n${H}\r\n`, expect: { status: 400 }, why: 'malformed version' },
  { name: 'lower-case method', bytes: `get / HTTP/1.1\r\n${H}\r\n`, expect: { status: 501 }, why: 'methods are case-sensitive; an unknown one is 501 (RFC 9110 §9.1)' },
  { name: 'unknown method', bytes: `BREW / HTTP/1.1\r\n${H}\r\n`, expect: { status: 501 }, why: 'only the methods of RFC 9110 and PATCH are passed on' },
  { name: 'misframed method', bytes: `helloGET / HTTP/1.1\r\n${H}\r\n`, expect: { status: 501 }, why: 'what a body of the wrong length leaves behind' },
  { name: 'two spaces', bytes: `GET  / HTTP/1.1\r\n${H}\r\n`, expect: { status: 400 }, why: 'exactly one SP between the parts' },
  { name: 'tab in target', bytes: `GET /a\t/b HTTP/1.1\r\n${H}\r\n`, expect: { status: 400 }, why: 'CTLs never appear in a target' },
  { name: 'target without slash', bytes: `GET p HTTP/1.1\r\n${H}\r\n`, expect: { status: 400 }, why: 'neither origin-, absolute- nor asterisk-form' },
  { name: 'fragment in target', bytes: `GET /a#b HTTP/1.1\r\n${H}\r\n`, expect: { status: 400 }, why: 'a fragment is never sent' },
  { name: 'non-ASCII in target', bytes: `GET /\xe9 HTTP/1.1\r\n${H}\r\n`, expect: { status: 400 }, why: 'targets are ASCII (percent-encode the rest)' },
  { name: 'absolute-form', bytes: `GET http://evil.example/p?x=1 HTTP/1.1\r\n${H}\r\n`, expect: { requests: [{ url: '/p?x=1' }] }, why: 'turned into origin-form: the backend never sees another authority' },
  { name: 'absolute-form, no path', bytes: `GET http://a.example HTTP/1.1\r\n${H}\r\n`, expect: { requests: [{ url: '/' }] }, why: 'an empty path is "/"' },
  { name: 'absolute-form, other scheme', bytes: `GET ftp://a/ HTTP/1.1\r\n${H}\r\n`, expect: { status: 400 }, why: 'only http and https' },
  { name: 'CONNECT', bytes: `CONNECT host:443 HTTP/1.1\r\n${H}\r\n`, expect: { status: 405, message: /CONNECT/ }, why: 'not a forward proxy' },
  { name: 'OPTIONS *', bytes: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, expect: { status: 200 }, why: 'about the server itself: answered here, never proxied' },
  { name: 'GET *', bytes: `GET * HTTP/1.1\r\n${H}\r\n`, expect: { status: 400 }, why: 'asterisk-form only with OPTIONS' },
  { name: 'empty lines before the request', bytes: `\r\n\r\nGET / HTTP/1.1\r\n${H}\r\n`, expect: { requests: [{ url: '/' }] }, why: 'RFC 9112 §2.2 robustness' },
  // ---- header lines
  { name: 'bare LF line ends', bytes: 'GET / HTTP/1.1\nHost: x\n\n', expect: { status: 400, message: /bare LF/ }, why: 'a line end to some parsers, not to others' },
  { name: 'bare CR inside a value', bytes: `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, expect: { status: 400 }, why: 'bare CR' },
  { name: 'bare CR before CRLF', bytes: `GET / HTTP/1.1\r\nHost: x\r\r\n\r\n`, expect: { status: 400 }, why: 'JavaScript trim() would have hidden it' },
  { name: 'obs-fold', bytes: `GET / HTTP/1.1\r\n${H}X-A: 1\r\n folded\r\n\r\n`, expect: { status: 400, message: /folding/ }, why: 'obsolete line folding is refused in requests (RFC 9112 §5.2)' },
  { name: 'space before colon', bytes: `POST / HTTP/1.1\r\n${H}Content-Length : 5\r\n\r\nhello`, expect: { status: 400, message: /header name/ }, why: 'RFC 9112 §5.1: MUST reject' },
  { name: 'NUL in a value', bytes: `GET / HTTP/1.1\r\n${H}X: a\x00b\r\n\r\n`, expect: { status: 400 }, why: 'CTL in a field value' },
  { name: 'NUL in a name', bytes: `GET / HTTP/1.1\r\n${H}X\x00Y: 1\r\n\r\n`, expect: { status: 400 }, why: 'names are tokens' },
  { name: 'vertical tab around a value', bytes: `GET / HTTP/1.1\r\n${H}X: \x0bv\r\n\r\n`, expect: { status: 400 }, why: 'only SP and HTAB are whitespace' },
  { name: 'obs-text in a value', bytes: `GET / HTTP/1.1\r\n${H}X: caf\xe9\r\n\r\n`, expect: { requests: [{ url: '/' }] }, why: 'obs-text is allowed in values (RFC 9110 §5.5)' },
  { name: 'missing Host', bytes: 'GET / HTTP/1.1\r\n\r\n', expect: { status: 400, message: /Host/ }, why: 'RFC 9112 §3.2' },
  { name: 'duplicate Host', bytes: `GET / HTTP/1.1\r\n${H}${H}\r\n`, expect: { status: 400, message: /more than one Host/ }, why: 'RFC 9112 §3.2: MUST 400, even when equal' },
  { name: 'invalid Host', bytes: 'GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n', expect: { status: 400, message: /invalid Host/ }, why: 'not a host [":" port]' },
  { name: 'head too large', bytes: `GET / HTTP/1.1\r\n${H}X: ${'a'.repeat(5000)}\r\n\r\n`, expect: { status: 431 }, why: 'maxHeadBytes' },
  // ---- Content-Length
  { name: 'Content-Length body', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, expect: { requests: [{ body: 'hello' }] }, why: 'length-delimited' },
  { name: 'Content-Length list', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`, expect: { status: 400 }, why: 'a list is not a length (RFC 9110 §8.6 allows recovery; we refuse)' },
  { name: 'Content-Length twice, equal', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, expect: { status: 400, message: /more than one/ }, why: 'refused as llhttp does (RFC 9110 §8.6 only allows recovering)' },
  { name: 'Content-Length with HTAB', bytes: `POST / HTTP/1.1\r\n${H}Content-Length:\t5\r\n\r\nhello`, expect: { status: 400 }, why: 'framing fields: SP only, as llhttp' },
  { name: 'Content-Length conflicting', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, expect: { status: 400, message: /conflicting/ }, why: 'CL.CL smuggling' },
  { name: 'Content-Length with \\v', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 5\x0b\r\n\r\nhello`, expect: { status: 400 }, why: 'only digits' },
  { name: 'Content-Length signed', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`, expect: { status: 400 }, why: 'only digits' },
  { name: 'Content-Length too large', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 5000\r\n\r\n`, expect: { status: 413 }, why: 'over maxBodyBytes, refused before the body is sent' },
  // ---- Transfer-Encoding
  { name: 'chunked body', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`, expect: { requests: [{ body: 'hello world' }] }, why: 'decoded' },
  { name: 'chunked, upper case', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: CHUNKED\r\n\r\n1\r\na\r\n0\r\n\r\n`, expect: { requests: [{ body: 'a' }] }, why: 'codings are case-insensitive' },
  { name: 'TE and CL', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, expect: { status: 400, message: /both/ }, why: 'CL.TE / TE.CL smuggling' },
  { name: 'CL and TE', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n`, expect: { status: 400, message: /both/ }, why: 'either order' },
  { name: 'TE gzip', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, expect: { status: 400, message: /final coding/ }, why: 'RFC 9112 §6.3: chunked not final: MUST 400' },
  { name: 'TE chunked, gzip', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, expect: { status: 400, message: /final coding/ }, why: 'chunked not final' },
  { name: 'TE gzip, chunked', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, expect: { status: 501 }, why: 'decoding only the chunks would drop gzip silently' },
  { name: 'TE twice', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, expect: { status: 400, message: /more than once/ }, why: 'chunked applied twice' },
  { name: 'TE chunked then identity', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'TE.TE obfuscation: chunked not final' },
  { name: 'TE with \\v', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'TE.TE obfuscation: not whitespace' },
  { name: 'TE with NBSP', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\xa0\r\n\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'TE.TE obfuscation: not a token' },
  { name: 'TE xchunked', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'TE.TE obfuscation: not chunked' },
  { name: 'TE in HTTP/1.0', bytes: `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'chunked is HTTP/1.1' },
  // ---- chunked framing
  { name: 'chunk size with junk', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2 junk\r\nab\r\n0\r\n\r\n`, expect: { status: 400, message: /chunk/ }, why: 'no whitespace in the size line' },
  { name: 'chunk size with a trailing space', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\na \r\n0123456789\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'llhttp refuses it too' },
  { name: 'chunk size 0x', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'hex digits only' },
  { name: 'chunk size overflow', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n`, expect: { status: 400, message: /too large/ }, why: 'at most 12 hex digits' },
  { name: 'chunk extension', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a=b;c;d="x y\\"z"\r\nhello\r\n0\r\n\r\n`, expect: { requests: [{ body: 'hello' }] }, why: 'token and quoted-string values' },
  { name: 'chunk extension with bare LF', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n28;\n${'x'.repeat(40)}\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'llhttp and nginx would split the size line here: smuggling' },
  { name: 'chunk extension with a control byte', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'extension names are tokens' },
  { name: 'chunk size line with garbage', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 garbage\x01\r\nhello\r\n0\r\n\r\n`, expect: { status: 400 }, why: 'strict size line' },
  { name: 'chunk data without CRLF', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n`, expect: { status: 400, message: /CRLF/ }, why: 'data must end in CRLF' },
  { name: 'trailers', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n`, expect: { requests: [{ body: 'a' }] }, why: 'read and dropped' },
  { name: 'trailer with bare LF', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\nGET /SMUGGLED HTTP/1.1\r\n${H}\r\n`, expect: { status: 400 }, why: 'one request to a lenient parser, two to nginx: refused' },
  { name: 'Content-Length as a trailer', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n`, expect: { status: 400, message: /trailer/ }, why: 'framing fields may not come as trailers (RFC 9110 §6.5.1)' },
  { name: 'trailer without a colon', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nnocolon\r\n\r\n`, expect: { status: 400 }, why: 'trailers are field lines' },
  { name: 'too many trailers', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n${'X: 1\r\n'.repeat(40)}\r\n`, expect: { status: 400, message: /trailer/ }, why: 'at most 32 trailer fields' },
  { name: 'chunked body too large', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${`258\r\n${'a'.repeat(600)}\r\n`.repeat(2)}0\r\n\r\n`, expect: { status: 413 }, why: 'decoded bytes count against maxBodyBytes' },
  // ---- Expect
  { name: 'Expect 100-continue', bytes: [`POST / HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n`, 'ok'], expect: { requests: [{ body: 'ok', headers: {} }] }, why: 'answered here with 100 Continue, and not passed on (the body is already read)' },
  { name: 'Expect something else', bytes: `POST / HTTP/1.1\r\n${H}Expect: the-unexpected\r\nContent-Length: 0\r\n\r\n`, expect: { status: 417 }, why: 'RFC 9110 §10.1.1' },
  // ---- pipelining
  { name: 'pipelined requests', bytes: `POST /a HTTP/1.1\r\n${H}Content-Length: 1\r\n\r\naGET /b HTTP/1.1\r\n${H}\r\nPOST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n`, expect: { requests: [{ url: '/a', body: 'a' }, { url: '/b' }, { url: '/c', body: 'c' }] }, why: 'one at a time, in order' },
];

/** Sends raw bytes; resolves with everything received once the server closes or `done` says so. */
function exchange(port: number, bytes: string | string[], done: (t: string) => boolean): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const parts = Array.isArray(bytes) ? [...bytes] : [bytes];
    let text = '';
    let closed = false;
    const finish = () => {
      socket.destroy();
      resolve({ text, closed });
    };
    socket.on('connect', () => socket.write(parts.shift()!, 'latin1'));
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (parts.length > 0 && text.includes('100 Continue')) socket.write(parts.shift()!, 'latin1');
      if (done(text)) finish();
    });
    socket.on('end', () => {
      closed = true;
      finish();
    });
    socket.on('error', finish);
  });
}

describe('HTTP/1.1 server rules (named cases)', () => {
  let server: Http1Server;
  let port = 0;
  let seen: Seen[] = [];
  before(async () => {
    server = new Http1Server(
      (req: Http1Request, res) => {
        seen.push({ method: req.method, url: req.url, body: req.body?.toString('latin1') ?? '', headers: req.headers });
        res.writeHead(200, { 'content-length': 2 });
        res.end('ok');
      },
      { maxBodyBytes: 1000, maxHeadBytes: 4096 },
    );
    await new Promise<void>((r) => server.server.listen(0, '127.0.0.1', r));
    port = (server.server.address() as { port: number }).port;
  });
  after(() => server.close(100));

  for (const rule of RULES) {
    it(`${rule.name}: ${'status' in rule.expect ? rule.expect.status : `${rule.expect.requests.length} request(s)`} (${rule.why})`, async () => {
      seen = [];
      const want = rule.expect;
      const n = 'requests' in want ? want.requests.length : 1;
      // a refusal is followed by the close; answers are complete with their 'ok' bodies
      const done = 'status' in want ? (t: string) => want.status === 200 && t.includes('\r\n\r\n') : (t: string) => (t.match(/\r\n\r\nok/g) ?? []).length >= n;
      const { text, closed } = await exchange(port, rule.bytes, done);
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])).filter((s) => s !== 100);
      if ('status' in want) {
        assert.deepEqual(statuses, [want.status], text.slice(0, 300));
        if (want.status !== 200) {
          assert.equal(seen.length, 0, 'nothing reached the handler');
          assert.match(text, /connection: close/);
          assert.ok(closed, 'the connection is closed after a refusal');
          if (want.message) assert.match(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)).error, want.message);
        }
        return;
      }
      assert.deepEqual(statuses, want.requests.map(() => 200), text.slice(0, 300));
      assert.equal(seen.length, want.requests.length);
      want.requests.forEach((w, i) => {
        for (const [k, v] of Object.entries(w)) {
          if (k === 'headers') assert.equal(seen[i]!.headers.expect, undefined, 'Expect is not passed on');
          else assert.equal(seen[i]![k as keyof Seen], v, `${k} of request ${i}`);
        }
      });
    });
  }

  it('refuses a chunked body whose framing outweighs it: one-byte chunks past the size plus 64 KiB (413)', async () => {
    // a limit far above what the bomb sends: the framing bound, not the body limit, must stop it
    const big = new Http1Server(() => assert.fail('no request may reach the handler'), { maxBodyBytes: 1024 * 1024 });
    await new Promise<void>((r) => big.server.listen(0, '127.0.0.1', r));
    try {
      const bomb = `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${'1\r\nx\r\n'.repeat(20_000)}`;
      const { text, closed } = await exchange((big.server.address() as { port: number }).port, bomb, () => false);
      assert.match(text, /^HTTP\/1\.1 413 /);
      assert.match(text, /chunked framing of the request body exceeds its size plus 65536 bytes/);
      assert.ok(closed);
    } finally {
      await big.close(100);
    }
  });

  it('splits at every byte: each request arrives whole, one byte per write', async () => {
    const bytes = `POST /split HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: 1\r\n\r\nGET /after HTTP/1.1\r\n${H}\r\n`;
    seen = [];
    await new Promise<void>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      let text = '';
      let i = 0;
      const next = () => {
        if (i < bytes.length) socket.write(bytes[i++]!, 'latin1', () => setImmediate(next));
      };
      socket.on('connect', next);
      socket.on('data', (d) => {
        text += d.toString('latin1');
        if ((text.match(/HTTP\/1\.1 200 /g) ?? []).length === 2) {
          socket.destroy();
          resolve();
        }
      });
      socket.on('error', reject);
    });
    assert.deepEqual(seen.map((s) => [s.url, s.body]), [['/split', 'hello'], ['/after', '']]);
  });
});

describe('request head: field names through the name cache', () => {
  const parse = (head: string) => parseRequestHead(Buffer.from(head, 'latin1'), 0, Buffer.byteLength(head, 'latin1'));

  it('keeps each spelling as sent and files them under one lower-case name', () => {
    for (const spelling of ['X-Trace', 'x-trace', 'X-TRACE', 'X-Trace']) {
      const h = parse(`GET / HTTP/1.1\r\nHost: x\r\n${spelling}: 1\r\nx-trace: 2`);
      assert.deepEqual(h.rawHeaders, ['Host', 'x', spelling, '1', 'x-trace', '2']);
      assert.equal(h.headers['x-trace'], '1, 2');
    }
  });

  it('keeps its own copy of a name: a read buffer that is reused for the next head', () => {
    // the parsers read from the socket's buffer, which the next read overwrites in place; two
    // spellings of one name that share a cache slot, parsed from the same bytes of one buffer
    const slot = (n: string) => [...n].reduce((h, ch) => nextNameHash(h, ch.charCodeAt(0)), 0) & (NAME_SLOTS - 1);
    const name = 'X-Collide-Name';
    const letters = [...name].flatMap((ch, i) => (/[a-z]/i.test(ch) ? [i] : []));
    let other: string | undefined;
    for (let mask = 1; mask < 1 << letters.length && other === undefined; mask++) {
      const chars = [...name];
      letters.forEach((at, bit) => {
        if (mask & (1 << bit)) chars[at] = chars[at] === chars[at]!.toLowerCase() ? chars[at]!.toUpperCase() : chars[at]!.toLowerCase();
      });
      if (slot(chars.join('')) === slot(name)) other = chars.join('');
    }
    assert.ok(other !== undefined, 'a spelling in the same slot');
    const buf = Buffer.alloc(64);
    const head = (h: string) => (buf.write(h, 'latin1'), parseRequestHead(buf, 0, h.length));
    for (const spelling of [name, other, name, other]) {
      assert.deepEqual(head(`GET / HTTP/1.1\r\nHost: x\r\n${spelling}: 1`).rawHeaders, ['Host', 'x', spelling, '1']);
    }
  });

  it('gives every field its own name when names share cache slots (3,000 names, more than the slots)', () => {
    // more names than slots: some hash to the same slot and replace each other; read twice, so the
    // second pass meets names in their slots and names whose slot another took
    const names = Array.from({ length: 3000 }, (_, i) => `X-F${i.toString(36)}${'abcdefgh'[i % 8]}`);
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${names.map((n, i) => `${n}: v${i}`).join('\r\n')}\r\nContent-Length: 3`;
    for (let pass = 0; pass < 2; pass++) {
      const h = parse(head);
      assert.equal(h.contentLength, 3);
      assert.equal(h.rawHeaders.length, 2 * (names.length + 2));
      names.forEach((n, i) => {
        assert.equal(h.rawHeaders[2 + 2 * i], n);
        assert.equal(h.headers[n.toLowerCase()], `v${i}`, n);
      });
    }
  });

  it('reads the usual head in one pass and anything odd line by line, with the same verdicts', () => {
    // values with inner and surrounding OWS, obs-text, an empty value: all in the one-pass scan
    const h = parse('GET / HTTP/1.1\r\nHost: x\r\nA:  two  words \r\nB:\tx\ty\t\r\nC: caf\xe9\r\nD:\r\nE: ');
    assert.deepEqual(h.rawHeaders, ['Host', 'x', 'A', 'two  words', 'B', 'x\ty', 'C', 'caf\xe9', 'D', '', 'E', '']);
    // a fault found after fields were gathered: the line-by-line reading starts again and names it
    assert.throws(() => parse('GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB : 2'), /malformed header name "B "/);
    assert.throws(() => parse('GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n folded'), /obsolete header line folding/);
    assert.throws(() => parse('GET / HTTP/1.1\r\nHost: x\r\nA: 1\x7f'), /invalid character in header A/);
    assert.throws(() => parse('GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\t5'), /invalid Content-Length/);
    assert.throws(() => parse('GET / HTTP/1.1\r\nHost: x\r\nHost: y'), /more than one Host/);
  });
});
