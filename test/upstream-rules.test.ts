/**
 * The rules for a backend's response head, one named case each (bytes -> result, and why), in the
 * manner of llhttp's test documents. Every case runs three ways: through the router's upstream
 * parser (whole and a byte per read), through llhttp (node:http's client, strict) as the oracle,
 * and end to end through a real router in front of a raw scripted backend, whose client must get
 * a 502 in OpenAI's shape for every refused response and never a byte of a smuggled header.
 * Generated responses against llhttp are upstream-differential.test.ts's.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from './helpers/test.js';
import { startService, waitFor, writeStaticServices, type RunningService } from './helpers/services.js';
import { downstreamResponseHeaders } from '../src/router/headers.js';
import { withNames } from './helpers/header-names.js';
import { ResponseParser, type BodyFraming, type ParserSink, type ResponseHead } from '../src/router/upstream/response-parser.js';

type Expect = { reject: RegExp } | { status: number; framing: BodyFraming; body: string; headers?: string[]; reusable?: boolean };

interface Rule {
  name: string;
  /** The whole response as the backend writes it (latin1). */
  bytes: string;
  expect: Expect;
  why: string;
  /** Set where llhttp decides otherwise (accepts what we refuse, or frames it differently): why we differ. */
  llhttpDiffers?: string;
  /** Text the router's client must never receive. */
  smuggled?: string;
}

const OK = 'Content-Length: 2\r\n\r\nok';
const ok = (headers?: string[]): Expect => ({ status: 200, framing: 'length', body: 'ok', ...(headers ? { headers: [...headers, 'Content-Length', '2'] } : {}) });
const refuse = (reject: RegExp): Expect => ({ reject });

const RULES: Rule[] = [
  // --- status line: HTTP-version SP 3DIGIT [SP reason-phrase] CRLF (RFC 9112 §4)
  { name: 'status: a plain 200', bytes: `HTTP/1.1 200 OK\r\n${OK}`, expect: ok([]), why: 'the baseline' },
  { name: 'status: 2e2 is not three digits (issue 13)', bytes: `HTTP/1.1 2e2 OK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'Number("2e2") is 200: the status must be exactly three digits' },
  { name: 'status: four digits', bytes: `HTTP/1.1 2000 OK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'three digits, then SP or CRLF' },
  { name: 'status: two spaces before the code', bytes: `HTTP/1.1  200 OK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'exactly one SP' },
  { name: 'status: HTAB instead of SP after the code', bytes: `HTTP/1.1 200\tOK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'the separator is SP' },
  { name: 'status: 099 is below 100', bytes: `HTTP/1.1 099 OK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'no HTTP status is below 100 (RFC 9110 §15)', llhttpDiffers: 'llhttp reads 099 as 99' },
  { name: 'status: 600 passes through', bytes: `HTTP/1.1 600 Odd\r\n${OK}`, expect: { ...ok(), status: 600 }, why: 'three digits; a client treats an unknown class as 5xx (RFC 9110 §15), as llhttp lets it' },
  { name: 'status: no reason phrase', bytes: `HTTP/1.1 200\r\n${OK}`, expect: ok(), why: 'common and harmless; llhttp accepts it' },
  { name: 'status: empty reason phrase', bytes: `HTTP/1.1 200 \r\n${OK}`, expect: ok(), why: 'reason-phrase may be empty' },
  { name: 'status: HTAB and obs-text in the reason', bytes: `HTTP/1.1 200 O\tK\xe9\r\n${OK}`, expect: ok(), why: 'reason-phrase = *( HTAB / SP / VCHAR / obs-text )' },
  { name: 'status: CTL in the reason', bytes: `HTTP/1.1 200 O\x01K\r\n${OK}`, expect: refuse(/invalid character in status line/), why: 'not HTAB/SP/VCHAR/obs-text', llhttpDiffers: 'llhttp does not check the reason phrase (the router writes its own, so only a broken backend is refused)' },
  { name: 'status: DEL in the reason', bytes: `HTTP/1.1 200 O\x7fK\r\n${OK}`, expect: refuse(/invalid character in status line/), why: 'DEL is a CTL', llhttpDiffers: 'llhttp does not check the reason phrase' },
  { name: 'status: bare CR in the reason', bytes: `HTTP/1.1 200 O\rK\r\n${OK}`, expect: refuse(/CR without LF|invalid character in status line/), why: 'lines end in CRLF only' },
  { name: 'status: bare LF ends the status line', bytes: `HTTP/1.1 200 OK\n${OK}`, expect: refuse(/LF without CR/), why: 'lines end in CRLF only' },
  { name: 'status: HTTP/1.2', bytes: `HTTP/1.2 200 OK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'we speak HTTP/1.1 and understand 1.0 answers' },
  { name: 'status: HTTP/2.0 on an HTTP/1.1 connection', bytes: `HTTP/2.0 200 OK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'not an HTTP/1.x message', llhttpDiffers: 'llhttp accepts the 2.0 version in a status line' },
  { name: 'status: lower-case http', bytes: `http/1.1 200 OK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'HTTP-name is case-sensitive' },
  { name: 'status: empty line before the status line', bytes: `\r\nHTTP/1.1 200 OK\r\n${OK}`, expect: refuse(/invalid status line/), why: 'only a server may skip empty lines before a message (RFC 9112 §2.2); on our connections bytes after a response already end its reuse', llhttpDiffers: 'llhttp skips empty lines before a response' },
  { name: 'status: 101 without asking for an upgrade', bytes: 'HTTP/1.1 101 Switching Protocols\r\n\r\n', expect: refuse(/protocol switch/), why: 'the router never asks for an upgrade', llhttpDiffers: 'llhttp reports the upgrade to its user' },
  { name: 'status: a 1xx in HTTP/1.0', bytes: `HTTP/1.0 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n${OK}`, expect: refuse(/interim response in HTTP\/1\.0/), why: 'interim answers are HTTP/1.1 only (RFC 9110 §15.2); llhttp takes the 1.0 one as the last message on the connection' },
  { name: 'status: 1xx interim responses are skipped', bytes: `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n${OK}`, expect: ok([]), why: 'the final response follows (RFC 9110 §15.2)' },

  // --- header lines: field-name ":" OWS field-value OWS CRLF (RFC 9112 §5)
  { name: 'header: obs-fold hides a Set-Cookie from LF-tolerant clients (issue 13)', bytes: `HTTP/1.1 200 OK\r\nX-A: a\r\n b\nSet-Cookie: evil=1\r\n${OK}`, expect: refuse(/obs-fold|LF without CR/), why: 'the folded line carried a bare LF the old check skipped; a proxy must not relay obs-fold (RFC 9112 §5.2)', smuggled: 'evil' },
  { name: 'header: obs-fold of Content-Length reached clients as "2 7" (issue 13)', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n 7\r\n\r\nok', expect: refuse(/obs-fold/), why: 'no obs-fold in responses', smuggled: '2 7' },
  { name: 'header: obs-fold with HTAB', bytes: `HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\n${OK}`, expect: refuse(/obs-fold/), why: 'no obs-fold in responses' },
  { name: 'header: a first line starting with SP', bytes: `HTTP/1.1 200 OK\r\n X-A: 1\r\n${OK}`, expect: refuse(/obs-fold/), why: 'a continuation of nothing' },
  { name: 'header: obs-fold in a 1xx response', bytes: `HTTP/1.1 103 Early Hints\r\nLink: a\r\n b\r\n\r\nHTTP/1.1 200 OK\r\n${OK}`, expect: refuse(/obs-fold/), why: 'interim heads follow the same grammar' },
  { name: 'header: bare LF inside a value', bytes: `HTTP/1.1 200 OK\r\nX-Split: a\nSet-Cookie: evil=1\r\n${OK}`, expect: refuse(/LF without CR/), why: 'an LF-tolerant client reads a second header', smuggled: 'evil' },
  { name: 'header: bare LF inside a name', bytes: `HTTP/1.1 200 OK\r\nX-A\nSet-Cookie: evil=1\r\n${OK}`, expect: refuse(/LF without CR/), why: 'the name was never checked: "X-A\\nSet-Cookie" passed', smuggled: 'evil' },
  { name: 'header: LF LF inside a name ends the head early for an LF client', bytes: `HTTP/1.1 200 OK\r\nX-A\n\n<script>: x\r\n${OK}`, expect: refuse(/LF without CR/), why: 'what follows would be read as the body', smuggled: '<script>' },
  { name: 'header: bare CR inside a value', bytes: `HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: evil=1\r\n${OK}`, expect: refuse(/CR without LF/), why: 'some clients end a line at a bare CR', smuggled: 'evil' },
  { name: 'header: bare CR inside a name', bytes: `HTTP/1.1 200 OK\r\nX\rA: 1\r\n${OK}`, expect: refuse(/CR without LF|invalid header/), why: 'not a token' },
  { name: 'header: CR CR LF line end', bytes: `HTTP/1.1 200 OK\r\nX-A: a\r\r\n${OK}`, expect: refuse(/CR without LF/), why: 'lines end in CRLF only' },
  { name: 'header: every line ends in a bare LF', bytes: 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok', expect: refuse(/LF without CR/), why: 'no CRLF CRLF ever comes: refused at once, not at the headers timeout' },
  { name: 'header: SP between name and colon', bytes: 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok', expect: refuse(/whitespace between header name and colon/), why: 'RFC 9112 §5.1: a proxy must not pass it on' },
  { name: 'header: HTAB between name and colon', bytes: 'HTTP/1.1 200 OK\r\nContent-Length\t: 2\r\n\r\nok', expect: refuse(/whitespace between header name and colon/), why: 'RFC 9112 §5.1' },
  { name: 'header: name is not a token', bytes: `HTTP/1.1 200 OK\r\nX(A): 1\r\n${OK}`, expect: refuse(/invalid header line/), why: 'field-name = token' },
  { name: 'header: obs-text in a name', bytes: `HTTP/1.1 200 OK\r\nX\xe9: 1\r\n${OK}`, expect: refuse(/invalid header line/), why: 'field-name = token' },
  { name: 'header: empty name', bytes: `HTTP/1.1 200 OK\r\n: 1\r\n${OK}`, expect: refuse(/invalid header line/), why: 'field-name = token' },
  { name: 'header: no colon', bytes: `HTTP/1.1 200 OK\r\nNoColon\r\n${OK}`, expect: refuse(/invalid header line/), why: 'not a header line' },
  { name: 'header: NUL in a value', bytes: `HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n${OK}`, expect: refuse(/invalid character in header value/), why: 'field-value holds no CTL' },
  { name: 'header: DEL in a value', bytes: `HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\n${OK}`, expect: refuse(/invalid character in header value/), why: 'field-value holds no CTL' },
  { name: 'header: VT before a value', bytes: `HTTP/1.1 200 OK\r\nX-A: \x0ba\r\n${OK}`, expect: refuse(/invalid character in header value/), why: 'only SP and HTAB are whitespace here; trim() would have dropped VT' },
  { name: 'header: SP and HTAB around a value are stripped', bytes: `HTTP/1.1 200 OK\r\nX-A: \t a \tb \t\r\n${OK}`, expect: ok(['X-A', 'a \tb']), why: 'OWS is not part of the value (RFC 9110 §5.5); inner whitespace stays' },
  { name: 'header: NBSP around a value is kept', bytes: `HTTP/1.1 200 OK\r\nX-A: \xa0a\xa0\r\n${OK}`, expect: ok(['X-A', '\xa0a\xa0']), why: 'obs-text, not whitespace (trim() removed it)' },
  { name: 'header: empty value', bytes: `HTTP/1.1 200 OK\r\nX-A:\r\n${OK}`, expect: ok(['X-A', '']), why: 'field-value may be empty' },
  { name: 'header: obs-text in a value', bytes: `HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\n${OK}`, expect: ok(['X-A', 'caf\xe9']), why: 'obs-text is relayed byte for byte' },

  // --- framing: Content-Length (RFC 9110 §8.6) and Transfer-Encoding (RFC 9112 §6)
  { name: 'length: a list of equal values, 5, 5 (issue 13)', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok', expect: refuse(/invalid content-length/), why: 'llhttp refuses a list, even of one repeated number (RFC 9110 §8.6 allows refusing); it was relayed as the list', smuggled: '2, 2' },
  { name: 'length: a list of different values', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok', expect: refuse(/invalid content-length/), why: 'which one frames the body?' },
  { name: 'length: the same value twice', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok', expect: refuse(/duplicate content-length/), why: 'as llhttp: one Content-Length line' },
  { name: 'length: two different values', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok', expect: refuse(/duplicate content-length/), why: 'conflicting framing' },
  { name: 'length: a sign', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok', expect: refuse(/invalid content-length/), why: '1*DIGIT' },
  { name: 'length: empty', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok', expect: refuse(/invalid content-length/), why: '1*DIGIT' },
  { name: 'length: SP inside', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\nok', expect: refuse(/invalid content-length/), why: '1*DIGIT' },
  { name: 'length: VT after the digits', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\x0b\r\n\r\nok', expect: refuse(/invalid character in header value/), why: 'trim() made this 2' },
  { name: 'length: NBSP after the digits', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\xa0\r\n\r\nok', expect: refuse(/invalid content-length/), why: 'trim() made this 2' },
  { name: 'length: 20 digits', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\nok', expect: refuse(/invalid content-length/), why: 'beyond any body (we accept at most 15 digits, exact in a double)' },
  { name: 'length: 16 digits', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\nok', expect: refuse(/invalid content-length/), why: 'beyond any body we relay', llhttpDiffers: 'llhttp counts up to 2^64-1' },
  { name: 'length: leading zeros', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok', expect: { status: 200, framing: 'length', body: 'ok', headers: ['Content-Length', '002'] }, why: 'still 1*DIGIT; llhttp accepts it' },
  { name: 'length: SP around the digits', bytes: 'HTTP/1.1 200 OK\r\nContent-Length:   2  \r\n\r\nok', expect: ok(), why: 'OWS, stripped like any value' },
  { name: 'length: HTAB after the digits', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\t\r\n\r\nok', expect: refuse(/HTAB in content-length/), why: 'HTAB is OWS, but llhttp refuses it here: framing fields take SP only, as on the request side' },
  { name: 'length: HTAB before the digits', bytes: 'HTTP/1.1 200 OK\r\nContent-Length:\t2\r\n\r\nok', expect: refuse(/HTAB in content-length/), why: 'framing fields take SP only, wherever the HTAB is', llhttpDiffers: 'llhttp accepts an HTAB before the digits (not after them)' },
  { name: 'keep-alive: HTTP/1.0 with Connection: keep-alive', bytes: `HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n${OK}`, expect: { ...ok(), reusable: true }, why: 'an HTTP/1.0 answer keeps the connection only when it says so' },
  { name: 'keep-alive: NBSP before keep-alive is not keep-alive', bytes: `HTTP/1.0 200 OK\r\nConnection: \xa0keep-alive\r\n${OK}`, expect: { ...ok(), reusable: false }, why: 'only SP/HTAB surround a token (trim() dropped the NBSP and we reused a connection llhttp would close)' },
  { name: 'length: close-delimited without a length', bytes: 'HTTP/1.1 200 OK\r\n\r\nok', expect: { status: 200, framing: 'close', body: 'ok', headers: [] }, why: 'the body ends when the backend closes (RFC 9112 §6.3)' },
  { name: 'chunked: the SSE framing', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: { status: 200, framing: 'chunked', body: 'ok', headers: ['Transfer-Encoding', 'chunked'] }, why: 'the baseline' },
  { name: 'chunked: in capitals', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: { status: 200, framing: 'chunked', body: 'ok' }, why: 'coding names are case-insensitive' },
  { name: 'chunked: SP after it', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked  \r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: { status: 200, framing: 'chunked', body: 'ok' }, why: 'OWS, stripped like any value' },
  { name: 'chunked: HTAB after it', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: refuse(/HTAB in transfer-encoding/), why: 'framing fields take SP only, as on the request side', llhttpDiffers: 'llhttp reads "chunked<HTAB>" as an unknown coding and the body to the close' },
  { name: 'chunked: gzip, chunked (issue 13)', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: refuse(/unsupported transfer-encoding/), why: 'a transfer coding is hop-by-hop: relaying it would need decoding (RFC 9112 §7); dropping it corrupts the body', llhttpDiffers: 'llhttp frames by the final chunked and leaves gzip to its user' },
  { name: 'chunked: chunked, gzip', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok', expect: refuse(/unsupported transfer-encoding/), why: 'only chunked', llhttpDiffers: 'llhttp reads to the close' },
  { name: 'chunked: chunked, chunked', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: refuse(/unsupported transfer-encoding/), why: 'chunked is applied at most once (RFC 9112 §6.1)', llhttpDiffers: 'llhttp accepts it' },
  { name: 'chunked: identity', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok', expect: refuse(/unsupported transfer-encoding/), why: 'not a registered coding any more', llhttpDiffers: 'llhttp reads to the close' },
  { name: 'chunked: empty', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\nok', expect: refuse(/unsupported transfer-encoding/), why: 'no coding named', llhttpDiffers: 'llhttp reads to the close' },
  { name: 'chunked: VT before it', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: \x0bchunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: refuse(/invalid character in header value/), why: 'trim() made this chunked' },
  { name: 'chunked: two Transfer-Encoding lines', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: refuse(/duplicate transfer-encoding/), why: 'a repeated framing header is a smuggling signature', llhttpDiffers: 'llhttp accepts it' },
  { name: 'chunked: gzip line then chunked line', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: refuse(/unsupported transfer-encoding/), why: 'the same as gzip, chunked', llhttpDiffers: 'llhttp frames by the final chunked' },
  { name: 'chunked: with a Content-Length', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: refuse(/both transfer-encoding and content-length/), why: 'both framings is a smuggling signature (RFC 9112 §6.3); llhttp refuses it too' },
  { name: 'chunked: with a Content-Length, on a 304', bytes: 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n', expect: refuse(/both transfer-encoding and content-length/), why: 'the same head, whatever the status; llhttp refuses it too' },
  { name: 'chunked: in an HTTP/1.0 response', bytes: 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: refuse(/HTTP\/1\.0/), why: 'faulty framing (RFC 9112 §6.1): HTTP/1.0 has no chunked', llhttpDiffers: 'llhttp decodes it' },
];

/** Records what our parser reports. */
class Recorder implements ParserSink {
  head: ResponseHead | undefined;
  body: Buffer[] = [];
  ends = 0;
  readonly parser = new ResponseParser(this);
  onHead(head: ResponseHead): void {
    this.head = head;
  }
  onBody(data: Buffer, start: number, end: number): void {
    this.body.push(Buffer.from(data.subarray(start, end)));
  }
  onEnd(): void {
    this.ends++;
  }
}

interface Ours {
  /** Undefined when the head was refused. */
  head?: ResponseHead;
  body: string;
  /** A parse error (in the head, or in the body after the head). */
  error?: Error;
  /** The body ended by its framing. */
  complete: boolean;
  /** Bytes followed the end of the response (the router relays it and does not reuse the connection). */
  leftover?: boolean;
}

/** Runs our parser over `bytes`, `perRead` bytes per read, then closes the connection. */
function ours(bytes: string, perRead: number): Ours {
  const r = new Recorder();
  r.parser.reset(false);
  const all = Buffer.from(bytes, 'latin1');
  const body = () => Buffer.concat(r.body).toString('latin1');
  try {
    for (let from = 0; from < all.length; from += perRead) {
      const read = all.subarray(from, Math.min(all.length, from + perRead));
      if (r.parser.execute(read, read.length) !== read.length) return { head: r.head, body: body(), complete: true, leftover: true };
    }
    return { head: r.head, body: body(), complete: r.parser.finish() };
  } catch (error) {
    return { head: r.head, body: body(), error: error as Error, complete: false };
  }
}

type Verdict = { status?: number; body?: string; error?: string };

/** What llhttp (node:http's client, strict) makes of each response, written by a raw server that then closes. */
async function llhttpVerdicts(responses: readonly string[]): Promise<Verdict[]> {
  const server = createServer((s) => {
    s.once('data', (d) => s.end(Buffer.from(responses[Number(/^GET \/(\d+)/.exec(d.toString('latin1'))![1])]!, 'latin1')));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const out: Verdict[] = [];
    for (let i = 0; i < responses.length; i++) {
      out.push(
        await new Promise<Verdict>((resolve) => {
          const req = httpRequest({ host: '127.0.0.1', port, path: `/${i}`, agent: false, insecureHTTPParser: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('latin1') }));
            // the head passed, the body did not end cleanly
            res.on('error', () => resolve({ status: res.statusCode, error: 'incomplete body' }));
          });
          // a 101 is an upgrade to node:http: the head was accepted
          req.on('upgrade', (res, socket) => (socket.destroy(), resolve({ status: res.statusCode })));
          req.on('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message }));
          req.end();
        }),
      );
    }
    return out;
  } finally {
    server.close();
  }
}

/**
 * Whether llhttp read a response as we did: the head refused by both, or the same status and body.
 * When we see the body end badly (cut short or a framing error), llhttp must report an error too;
 * node:http does not always say whether that came after the head. Bytes after the end of a
 * response are either a broken next response to llhttp (an error) or, for empty lines, skipped.
 */
function agrees(mine: Ours, theirs: Verdict): boolean {
  if (mine.head === undefined) return theirs.status === undefined;
  const errorToo = theirs.error !== undefined && (theirs.status === undefined || theirs.status === mine.head.status);
  const sameMessage = theirs.error === undefined && theirs.status === mine.head.status && theirs.body === mine.body;
  if (mine.error || !mine.complete) return errorToo;
  return mine.leftover ? errorToo || sameMessage : sameMessage;
}

describe('upstream response rules', () => {
  it('every rule: our parser, whole and a byte per read', () => {
    const names = new Set<string>();
    for (const rule of RULES) {
      assert.ok(!names.has(rule.name), `duplicate rule name ${rule.name}`);
      names.add(rule.name);
      for (const perRead of [rule.bytes.length, 1]) {
        const got = ours(rule.bytes, perRead);
        const label = `${rule.name} (${perRead === 1 ? 'a byte per read' : 'whole'})`;
        if ('reject' in rule.expect) {
          assert.ok(got.error, `${label}: refused`);
          assert.equal((got.error as Error & { code?: string }).code, 'UPSTREAM_PROTOCOL', label);
          assert.match(got.error.message, rule.expect.reject, label);
          assert.equal(got.head, undefined, `${label}: nothing reported before the refusal`);
        } else {
          assert.equal(got.error, undefined, `${label}: ${got.error?.message}`);
          assert.ok(got.complete, `${label}: complete`);
          assert.equal(got.head?.status, rule.expect.status, label);
          assert.equal(got.head?.framing, rule.expect.framing, label);
          assert.equal(got.body, rule.expect.body, label);
          if (rule.expect.headers) assert.deepEqual(got.head?.headers, rule.expect.headers, label);
          // the names lower-cased, one a field, as the name cache gives them
          assert.deepEqual(got.head?.names, withNames(got.head!.headers)[1], `${label}: lower-case names`);
          if (rule.expect.reusable !== undefined) assert.equal(got.head?.keepAlive, rule.expect.reusable, `${label}: reusable`);
        }
      }
    }
  });

  it('every rule against llhttp (node:http client): the same verdict and framing, or a named difference', async () => {
    const verdicts = await llhttpVerdicts(RULES.map((r) => r.bytes));
    RULES.forEach((rule, i) => {
      const theirs = verdicts[i]!;
      const mine = ours(rule.bytes, rule.bytes.length);
      const same = agrees(mine, theirs);
      if (rule.llhttpDiffers) assert.ok(!same, `${rule.name}: listed as differing from llhttp, but llhttp agrees (${JSON.stringify(theirs)}): remove llhttpDiffers`);
      else assert.ok(same, `${rule.name}: llhttp says ${JSON.stringify(theirs)}, we say ${mine.error?.message ?? `${mine.head?.status} ${JSON.stringify(mine.body)}`}`);
    });
  });
});

/**
 * A scripted backend on raw sockets: GET /health is 200; `GET /v1/rules/<index>` gets the rule's
 * bytes as they are, and the connection stays open unless the body is close-delimited (so a
 * refusal must not wait for a close); other paths get `custom`'s answer.
 */
async function scriptedBackend(custom: (path: string, head: string, socket: Socket) => string | undefined): Promise<{ server: Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((socket: Socket) => {
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4); // the test sends no request bodies
        const path = head.slice(head.indexOf(' ') + 1, head.indexOf(' HTTP/'));
        if (path === '/health') {
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
          continue;
        }
        seen.push(path);
        const rule = /^\/v1\/rules\/(\d+)$/.exec(path);
        if (rule) {
          const r = RULES[Number(rule[1])]!;
          socket.write(Buffer.from(r.bytes, 'latin1'));
          if ('framing' in r.expect && r.expect.framing === 'close') socket.end();
          continue;
        }
        const answer = custom(path, head, socket);
        if (answer !== undefined) socket.write(answer, 'latin1');
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, seen };
}

interface ClientView {
  /** Everything the client received, as bytes (latin1). */
  raw: string;
  status: number;
  headers: Array<[string, string]>;
  /** The body, de-chunked; `complete` says whether its framing ended cleanly. */
  body: string;
  complete: boolean;
}

/** A raw client: one request with Connection: close, everything read until the router closes. */
function rawGet(port: number, path: string, extra = '', onData?: (soFar: string) => void): Promise<ClientView> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      onData?.(Buffer.concat(chunks).toString('latin1'));
    });
    s.on('error', reject);
    s.on('close', () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const end = raw.indexOf('\r\n\r\n');
      const lines = raw.slice(0, end).split('\r\n');
      const headers = lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as [string, string]);
      let body = raw.slice(end + 4);
      let complete = true;
      if (headers.some(([k, v]) => k === 'transfer-encoding' && v === 'chunked')) {
        let decoded = '';
        complete = false;
        for (let at = 0; ; ) {
          const eol = body.indexOf('\r\n', at);
          if (eol === -1) break;
          const size = parseInt(body.slice(at, eol), 16);
          if (!(size >= 0)) break;
          if (size === 0) {
            complete = body.endsWith('\r\n\r\n');
            break;
          }
          decoded += body.slice(eol + 2, eol + 2 + size);
          at = eol + 2 + size + 2;
        }
        body = decoded;
      }
      resolve({ raw, status: Number(lines[0]!.split(' ')[1]), headers, body, complete });
    });
    s.write(`GET ${path} HTTP/1.1\r\nHost: router.example\r\nConnection: close\r\n${extra}\r\n`, 'latin1');
  });
}

const named = (v: ClientView, name: string): string[] => v.headers.filter(([k]) => k === name).map(([, val]) => val);

describe('upstream response rules through a real router', () => {
  const started: Array<RunningService | Server> = [];
  let router: RunningService;
  let backend: Awaited<ReturnType<typeof scriptedBackend>>;
  let brokenBody: Socket | undefined;
  after(async () => {
    for (const s of started) 'proc' in s ? await s.stop() : s.close();
  });
  before(async () => {
    backend = await scriptedBackend((path, head, socket) => {
      const echo = /\r\nx-request-id: *([^\r]*)/i.exec(head)?.[1];
      if (path === '/v1/id/echo') return `HTTP/1.1 200 OK\r\nX-Request-Id: ${echo}\r\nContent-Length: 2\r\n\r\nok`;
      if (path === '/v1/id/own') return 'HTTP/1.1 200 OK\r\nx-request-id: backend-7\r\nContent-Length: 2\r\n\r\nok';
      if (path === '/v1/id/none') return 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
      // the head and a first chunk; the test breaks the framing once the client has them
      if (path === '/v1/broken-body') {
        brokenBody = socket;
        return 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n';
      }
      return undefined;
    });
    started.push(backend.server);
    const file = await writeStaticServices([{ name: 'scripted', port: backend.port, models: ['m'] }]);
    // a refusal must come at once: a regression would show as a 504 after 30 s, not as a hang
    router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--health-interval', '3600', '--max-errors', '1000'], { env: { PROXY_TIMEOUT_SECONDS: '30' } });
    started.push(router);
    await waitFor(async () => (await rawGet(router.port, '/v1/id/none')).status === 200, 'the scripted backend is routable');
  });

  it('every refused response is a 502 in OpenAI shape, without a byte of what was smuggled; every accepted one is relayed', async () => {
    for (let i = 0; i < RULES.length; i++) {
      const rule = RULES[i]!;
      const before = backend.seen.length;
      const got = await rawGet(router.port, `/v1/rules/${i}`);
      assert.equal(backend.seen.length - before, 1, `${rule.name}: exactly one attempt`);
      if ('reject' in rule.expect) {
        assert.equal(got.status, 502, `${rule.name}: ${got.raw.slice(0, 200)}`);
        assert.deepEqual(named(got, 'content-type'), ['application/json'], rule.name);
        assert.deepEqual(JSON.parse(got.body), { error: { message: 'Bad gateway - error communicating with service', type: 'server_error', param: null, code: 'upstream_error' } }, rule.name);
      } else {
        assert.equal(got.status, rule.expect.status, `${rule.name}: ${got.raw.slice(0, 200)}`);
        assert.equal(got.body, rule.expect.body, rule.name);
        assert.ok(got.complete, `${rule.name}: the body ended cleanly`);
        assert.ok(named(got, 'content-length').length <= 1, `${rule.name}: at most one content-length`);
        assert.ok(named(got, 'transfer-encoding').length <= 1, `${rule.name}: at most one transfer-encoding`);
        assert.equal(named(got, 'x-request-id').length, 1, `${rule.name}: one x-request-id`);
      }
      if (rule.smuggled) assert.ok(!got.raw.includes(rule.smuggled), `${rule.name}: ${JSON.stringify(rule.smuggled)} reached the client`);
    }
  });

  it('X-Request-Id: exactly one, the backend\'s when it sends one, else ours', async () => {
    const echoed = await rawGet(router.port, '/v1/id/echo');
    assert.equal(named(echoed, 'x-request-id').length, 1, 'the backend echoed our generated id: the client sees it once');
    const own = await rawGet(router.port, '/v1/id/own');
    assert.deepEqual(named(own, 'x-request-id'), ['backend-7']);
    const none = await rawGet(router.port, '/v1/id/none');
    assert.equal(named(none, 'x-request-id').length, 1, 'generated when the backend sends none');
    const client = await rawGet(router.port, '/v1/id/echo', 'X-Request-Id: client-3\r\n');
    assert.deepEqual(named(client, 'x-request-id'), ['client-3'], 'the client\'s id, echoed by the backend, once');
    const clientNone = await rawGet(router.port, '/v1/id/none', 'X-Request-Id: client-4\r\n');
    assert.deepEqual(named(clientNone, 'x-request-id'), [], 'the client knows its id: not added when the backend drops it');
  });

  it('a framing error after the head was relayed cuts the client off: no clean end, no retry', async () => {
    const before = backend.seen.length;
    let broken = false;
    const got = await rawGet(router.port, '/v1/broken-body', '', (soFar) => {
      if (broken || !soFar.includes('\r\nok\r\n')) return;
      broken = true;
      brokenBody!.write('zz\r\n');
    });
    assert.equal(got.status, 200, 'the head had been relayed already');
    assert.equal(got.complete, false, 'the client never sees a last chunk');
    assert.equal(got.body, 'ok');
    assert.equal(backend.seen.length - before, 1, 'one attempt');
  });

  it('the downstream header list: hop-by-hop removed, our id added only when none came', () => {
    assert.deepEqual(downstreamResponseHeaders(...withNames(['X-Request-Id', 'b', 'Content-Length', '2']), 'ours', true), ['X-Request-Id', 'b', 'Content-Length', '2']);
    assert.deepEqual(downstreamResponseHeaders(...withNames(['Content-Length', '2']), 'ours', true), ['Content-Length', '2', 'x-request-id', 'ours']);
    // an id the backend marked hop-by-hop is removed, and ours takes its place
    assert.deepEqual(downstreamResponseHeaders(...withNames(['Connection', 'x-request-id', 'x-request-id', 'b']), 'ours', true), ['x-request-id', 'ours']);
  });
});
