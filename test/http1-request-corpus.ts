/**
 * Request bytes for the differential test against llhttp (test/http1-differential.test.ts): the
 * cases issue 13 names, the classic request-smuggling corpus, and the sources the seeded mutation
 * generator starts from. Bytes are latin1 strings (one character per byte). Each case says why it
 * is here; what each parser makes of it is the test's business, not written down here.
 */
import type { MutationSource } from './helpers/seeded-mutations.js';

export interface RequestCase {
  name: string;
  /** One write, or several (each read by the server before the next is sent). */
  bytes: string | string[];
  why: string;
}

const H = 'Host: x\r\n';
const post = (headers: string, body = ''): string => `POST / HTTP/1.1\r\n${H}${headers}\r\n${body}`;
const chunked = (body: string, te = 'Transfer-Encoding: chunked\r\n'): string => post(te, body);
const HELLO = '5\r\nhello\r\n0\r\n\r\n';
const get = (path = '/'): string => `GET ${path} HTTP/1.1\r\n${H}\r\n`;

/**
 * 0x28 = 40 bytes of chunk data: to a parser that ends a chunk-size line at a bare LF, they are the
 * CRLF after 40 other bytes, the last chunk, and a second request.
 */
const SMUGGLED_IN_40 = ((): string => {
  const text = (path: string): string => `\r\n0\r\n\r\nGET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
  return text(`/${'s'.repeat(40 - text('/').length)}`);
})();

/** The points issue 13 names, one case each. */
export const ISSUE_CASES: RequestCase[] = [
  { name: 'te-chunked-then-gzip', bytes: chunked(HELLO, 'Transfer-Encoding: chunked, gzip\r\n'), why: 'chunked is not the final coding: the body cannot be framed (RFC 9112 §6.3)' },
  { name: 'te-gzip-then-chunked', bytes: chunked(HELLO, 'Transfer-Encoding: gzip, chunked\r\n'), why: 'framed by chunked, but the gzip coding must not be dropped silently' },
  { name: 'cl-space-before-colon', bytes: post('Content-Length : 5\r\n', 'hello'), why: 'whitespace between name and colon must be refused (RFC 9112 §5.1)' },
  { name: 'te-duplicate-lines', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n'), why: 'two Transfer-Encoding lines are one list: chunked twice' },
  { name: 'te-gzip-line-then-chunked-line', bytes: chunked(HELLO, 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n'), why: 'the list across lines ends in chunked' },
  { name: 'chunk-size-2-junk', bytes: chunked('2 junk\r\nab\r\n0\r\n\r\n'), why: 'text after a chunk size that is not an extension' },
  { name: 'chunk-size-a-space', bytes: chunked('a \r\n0123456789\r\n0\r\n\r\n'), why: 'trailing whitespace after a chunk size (BWS before an extension only)' },
  { name: 'http-0.9', bytes: 'GET /\r\n', why: 'HTTP/0.9 request line without a version' },
  { name: 'options-star', bytes: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, why: 'asterisk-form: for the server itself, not a backend' },
  { name: 'connect-authority', bytes: 'CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n', why: 'authority-form: a proxy tunnel, the bytes after it are not HTTP' },
  { name: 'te-vt-before-chunked', bytes: chunked(HELLO, 'Transfer-Encoding: \x0bchunked\r\n'), why: 'VT is not OWS: JavaScript trim() strips it' },
  { name: 'te-chunked-nbsp', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\xa0\r\n'), why: 'NBSP (obs-text) is not OWS: JavaScript trim() strips it' },
  { name: 'cl-5-vt', bytes: post('Content-Length: 5\x0b\r\n', 'hello'), why: 'VT after a length: JavaScript trim() strips it' },
  { name: 'cl-bare-cr-end', bytes: post('Content-Length: 5\r\r\n', 'hello'), why: 'a bare CR before the CRLF: trim() strips it' },
  { name: 'te-bare-cr-end', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\r\r\n'), why: 'a bare CR before the CRLF of the framing header' },
  { name: 'bare-cr-line-ends', bytes: 'GET / HTTP/1.1\rHost: x\r\r\n', why: 'bare CR as the only line end' },
  { name: 'bare-lf-line-ends', bytes: 'GET / HTTP/1.1\nHost: x\n\n', why: 'bare LF line ends (RFC 9112 §2.2 lets a recipient accept them; llhttp does not)' },
  { name: 'bare-lf-in-header-line', bytes: 'GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n', why: 'one header line ending in a bare LF' },
  {
    name: 'chunk-ext-bare-lf-smuggle',
    bytes: chunked(`28;\n${'x'.repeat(38)}\r\n${SMUGGLED_IN_40}\r\n0\r\n\r\n`),
    why: 'a bare LF in a size line: to us the rest of the line is an extension, to nginx it ends the line and a second request follows the body',
  },
  { name: 'trailer-bare-lf-smuggle', bytes: chunked(`0\r\n\n${get('/SMUGGLED')}`), why: '0 CRLF LF ends the body for LF-tolerant parsers; the rest is a second request' },
  { name: 'chunk-size-garbage-ctl', bytes: chunked('5 garbage\x01\r\nhello\r\n0\r\n\r\n'), why: 'a CTL in a chunk-size line' },
  { name: 'absolute-form', bytes: 'GET http://evil.example/p HTTP/1.1\r\nHost: x\r\n\r\n', why: 'absolute-form target (RFC 9112 §3.2.2): forwarded as is, a backend may route on its host' },
  { name: 'target-with-tab', bytes: 'GET /a\t/b HTTP/1.1\r\nHost: x\r\n\r\n', why: 'HTAB is not allowed in a request target' },
  { name: 'target-no-slash', bytes: 'GET p HTTP/1.1\r\nHost: x\r\n\r\n', why: 'neither origin-form nor any other form' },
  { name: 'host-duplicate-same', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n', why: 'more than one Host line: 400 (RFC 9112 §3.2)' },
  { name: 'host-conflicting', bytes: 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', why: 'two different hosts: which one routes?' },
  { name: 'cl-list-same', bytes: post('Content-Length: 5, 5\r\n', 'hello'), why: 'a list of equal lengths (RFC 9110 §8.6 lets a recipient take it or refuse it)' },
  { name: 'expect-100-continue', bytes: [post('Content-Length: 5\r\nExpect: 100-continue\r\n'), 'hello'], why: 'the body follows the interim answer' },
];

/** The classic request-smuggling corpus (CL.TE, TE.CL, TE.TE and friends). */
export const SMUGGLING_CASES: RequestCase[] = [
  { name: 'cl-te', bytes: post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\nG${get()}`), why: 'CL.TE: front end reads 6 bytes, back end reads chunked' },
  { name: 'te-cl', bytes: post('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', `8\r\nSMUGGLED\r\n0\r\n\r\n`), why: 'TE.CL: the other order' },
  { name: 'te-space-before-colon', bytes: post('Content-Length: 4\r\nTransfer-Encoding : chunked\r\n', '5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n'), why: 'TE.TE: a name some parsers trim' },
  { name: 'te-tab-value', bytes: chunked(HELLO, 'Transfer-Encoding:\tchunked\r\n'), why: 'HTAB is OWS: a valid way to write chunked' },
  { name: 'te-xchunked', bytes: post('Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n', 'hello'), why: 'TE.TE: an unknown coding next to a length' },
  { name: 'te-xchunked-alone', bytes: chunked(HELLO, 'Transfer-Encoding: xchunked\r\n'), why: 'an unknown coding: the body cannot be read' },
  { name: 'te-chunked-then-identity', bytes: chunked(HELLO, 'Transfer-encoding: chunked\r\nTransfer-Encoding: identity\r\n'), why: 'TE.TE: identity as the final coding' },
  { name: 'te-chunked-then-x', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n'), why: 'TE.TE: an unknown final coding' },
  { name: 'cl-then-te', bytes: post('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', HELLO), why: 'both framings, CL first (RFC 9112 §6.1: a smuggling signature)' },
  { name: 'te-then-cl', bytes: post('Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', HELLO), why: 'both framings, TE first' },
  { name: 'cl-duplicate-same', bytes: post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), why: 'two equal Content-Length lines' },
  { name: 'cl-conflicting', bytes: post('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'), why: 'two different lengths' },
  { name: 'cl-list-conflicting', bytes: post('Content-Length: 5, 6\r\n', 'hello!'), why: 'a list of different lengths' },
  { name: 'cl-negative', bytes: post('Content-Length: -5\r\n', 'hello'), why: 'a sign is not a digit' },
  { name: 'cl-plus', bytes: post('Content-Length: +5\r\n', 'hello'), why: 'a sign is not a digit' },
  { name: 'cl-hex', bytes: post('Content-Length: 0x5\r\n', 'hello'), why: 'hex is not decimal' },
  { name: 'cl-leading-zeros', bytes: post('Content-Length: 005\r\n', 'hello'), why: '1*DIGIT allows leading zeros' },
  { name: 'cl-huge', bytes: post('Content-Length: 99999999999999999999\r\n', 'hello'), why: 'overflows 64 bits' },
  { name: 'cl-empty', bytes: post('Content-Length: \r\n', 'hello'), why: 'no digits' },
  { name: 'cl-inner-space', bytes: post('Content-Length: 1 0\r\n', 'helloworld'), why: 'two numbers or one?' },
  { name: 'cl-tab-ows', bytes: post('Content-Length:\t5\t\r\n', 'hello'), why: 'HTAB is OWS on both sides' },
  { name: 'cl-trailing-space', bytes: post('Content-Length: 5 \r\n', 'hello'), why: 'SP is OWS' },
  { name: 'te-chunked-trailing-tab', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\t\r\n'), why: 'HTAB is OWS, but llhttp reads the coding with the tab' },
  { name: 'te-chunked-trailing-space', bytes: chunked(HELLO, 'Transfer-Encoding: chunked \r\n'), why: 'SP is OWS' },
  { name: 'cl-space-tab-ows', bytes: post('Content-Length: 5 \t\r\n', 'hello'), why: 'SP and HTAB after a length' },
  { name: 'te-uppercase', bytes: chunked(HELLO, 'Transfer-Encoding: CHUNKED\r\n'), why: 'codings are case-insensitive' },
  { name: 'te-chunked-twice-list', bytes: chunked(HELLO, 'Transfer-Encoding: chunked, chunked\r\n'), why: 'chunked must not be applied twice (RFC 9112 §7)' },
  { name: 'te-identity-chunked', bytes: chunked(HELLO, 'Transfer-Encoding: identity, chunked\r\n'), why: 'identity is no coding any more (RFC 9112 removed it)' },
  { name: 'te-empty', bytes: chunked(HELLO, 'Transfer-Encoding: \r\n'), why: 'an empty coding list' },
  { name: 'te-comma-chunked', bytes: chunked(HELLO, 'Transfer-Encoding: ,chunked\r\n'), why: 'an empty list element before chunked' },
  { name: 'te-chunked-param', bytes: chunked(HELLO, 'Transfer-Encoding: chunked;q=1\r\n'), why: 'chunked takes no parameters' },
  { name: 'te-http-1.0', bytes: `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n${HELLO}`, why: 'chunked in an HTTP/1.0 request (RFC 9112 §6.1)' },
  { name: 'obs-fold-plain', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', why: 'obs-fold: refuse or replace by SP (RFC 9112 §5.2)' },
  { name: 'obs-fold-te', bytes: chunked(HELLO, 'Transfer-Encoding:\r\n chunked\r\n'), why: 'the framing header folded' },
  { name: 'obs-fold-cl', bytes: post('Content-Length: 5\r\n 0\r\n', 'hello'), why: 'a folded length: 5 or 5 0?' },
  { name: 'obs-fold-first-line', bytes: 'GET / HTTP/1.1\r\n X: 1\r\nHost: x\r\n\r\n', why: 'a continuation with nothing to continue' },
  { name: 'nul-in-name', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX\x00Y: 1\r\n\r\n', why: 'NUL in a field name' },
  { name: 'nul-in-value', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n', why: 'NUL in a field value' },
  { name: 'nul-in-target', bytes: 'GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n', why: 'NUL in the target' },
  { name: 'nul-in-te', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\x00\r\n'), why: 'NUL after chunked' },
  { name: 'chunk-size-overflow', bytes: chunked('ffffffffffffffffff\r\nhello\r\n0\r\n\r\n'), why: 'a size that overflows 64 bits must not wrap' },
  { name: 'chunk-size-2pow64', bytes: chunked('10000000000000000\r\nhello\r\n0\r\n\r\n'), why: '2^64 wraps to 0 in a naive parser' },
  { name: 'chunk-size-negative', bytes: chunked('-5\r\nhello\r\n0\r\n\r\n'), why: 'a sign is not hex' },
  { name: 'chunk-size-0x', bytes: chunked('0x5\r\nhello\r\n0\r\n\r\n'), why: 'a 0x prefix is not hex' },
  { name: 'chunk-size-plus', bytes: chunked('+5\r\nhello\r\n0\r\n\r\n'), why: 'a sign is not hex' },
  { name: 'chunk-size-leading-space', bytes: chunked(' 5\r\nhello\r\n0\r\n\r\n'), why: 'whitespace before the size' },
  { name: 'chunk-size-uppercase', bytes: chunked('A\r\n0123456789\r\n0\r\n\r\n'), why: 'upper-case hex is hex' },
  { name: 'chunk-size-leading-zeros', bytes: chunked('0005\r\nhello\r\n0\r\n\r\n'), why: 'leading zeros' },
  { name: 'chunk-ext-plain', bytes: chunked('5;a=b\r\nhello\r\n0;c\r\n\r\n'), why: 'extensions as the grammar has them' },
  { name: 'chunk-ext-quoted', bytes: chunked('5;a="b c"\r\nhello\r\n0\r\n\r\n'), why: 'a quoted extension value' },
  { name: 'chunk-ext-quoted-pair', bytes: chunked('5;a="b\\"c"\r\nhello\r\n0\r\n\r\n'), why: 'a quoted-pair inside a quoted value' },
  { name: 'chunk-ext-quoted-crlf', bytes: chunked('5;a="b\r\nhello\r\n"\r\nhello\r\n0\r\n\r\n'), why: 'CRLF inside a quoted extension value' },
  { name: 'chunk-ext-bws', bytes: chunked('5 ; a = b\r\nhello\r\n0\r\n\r\n'), why: 'BWS around the extension' },
  { name: 'chunk-ext-empty-name', bytes: chunked('5;\r\nhello\r\n0\r\n\r\n'), why: 'a semicolon without a name' },
  { name: 'chunk-ext-bad-char', bytes: chunked('5;a=b@c\r\nhello\r\n0\r\n\r\n'), why: '@ is not a token character' },
  { name: 'chunk-ext-bare-cr', bytes: chunked('5;a\rb\r\nhello\r\n0\r\n\r\n'), why: 'a bare CR inside an extension' },
  { name: 'chunk-data-too-long', bytes: chunked('5\r\nhelloX\r\n0\r\n\r\n'), why: 'more data than the size says' },
  { name: 'chunk-data-no-crlf', bytes: chunked('5\r\nhello0\r\n\r\n'), why: 'no CRLF after the data' },
  { name: 'chunk-data-lf-only', bytes: chunked('5\r\nhello\n0\r\n\r\n'), why: 'a bare LF after the data' },
  { name: 'chunk-size-lf-only', bytes: chunked('5\nhello\r\n0\r\n\r\n'), why: 'a bare LF after the size' },
  { name: 'last-chunk-lf-only', bytes: chunked('5\r\nhello\r\n0\n\r\n'), why: 'a bare LF after the last chunk size' },
  { name: 'trailer-one', bytes: chunked('5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n'), why: 'a trailer field' },
  { name: 'trailer-two', bytes: chunked('0\r\nA: 1\r\nB: 2\r\n\r\n'), why: 'two trailer fields' },
  { name: 'trailer-no-final-crlf', bytes: chunked('0\r\nX-T: 1\r\n'), why: 'the trailer section never ends (the probe follows)' },
  { name: 'trailer-bad-name', bytes: chunked('0\r\nBad Name: 1\r\n\r\n'), why: 'a trailer name that is not a token' },
  { name: 'trailer-no-colon', bytes: chunked('0\r\nnocolon\r\n\r\n'), why: 'a trailer line without a colon' },
  { name: 'trailer-obs-fold', bytes: chunked('0\r\nX-T: 1\r\n 2\r\n\r\n'), why: 'obs-fold in the trailers' },
  { name: 'trailer-bare-lf', bytes: chunked('0\r\nX-T: 1\n\r\n'), why: 'a bare LF ending a trailer line' },
  { name: 'trailer-nul', bytes: chunked('0\r\nX-T: a\x00b\r\n\r\n'), why: 'NUL in a trailer value' },
  { name: 'trailer-content-length', bytes: chunked('5\r\nhello\r\n0\r\nContent-Length: 3\r\n\r\n'), why: 'a framing field in the trailers (RFC 9110 §6.5.1: not to be used)' },
  { name: 'trailer-transfer-encoding', bytes: chunked('0\r\nTransfer-Encoding: chunked\r\n\r\n'), why: 'a framing field in the trailers' },
  { name: 'last-chunk-only-crlf-missing', bytes: chunked('0\r\n'), why: 'a body that stops after the last chunk line (the probe follows)' },
];

/** Requests every strict parser accepts, alone and pipelined: the baseline. */
export const VALID_CASES: RequestCase[] = [
  { name: 'get', bytes: get(), why: 'the simplest request' },
  { name: 'get-query', bytes: get('/a/b?c=d&e=%20'), why: 'a query and a percent-escape' },
  { name: 'post-length', bytes: post('Content-Length: 5\r\n', 'hello'), why: 'a Content-Length body' },
  { name: 'post-chunked', bytes: chunked('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'), why: 'a chunked body' },
  { name: 'get-with-body', bytes: `GET / HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc`, why: 'GET may carry a body' },
  { name: 'http-1.0', bytes: 'GET / HTTP/1.0\r\n\r\n', why: 'HTTP/1.0 without Host; the connection closes after it' },
  { name: 'http-1.0-keep-alive', bytes: 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', why: 'HTTP/1.0 asking to keep the connection' },
  { name: 'http-1.0-keep-alive-nbsp', bytes: `GET / HTTP/1.0\r\nConnection: \xa0keep-alive\r\n\r\n${get('/2')}`, why: 'NBSP is not OWS: the connection is not kept, the second request is not read' },
  { name: 'leading-crlf', bytes: `\r\n\r\n${get()}`, why: 'empty lines before a request line (RFC 9112 §2.2)' },
  { name: 'ows-around-value', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: \t a b \t\r\n\r\n', why: 'OWS is not part of a value' },
  { name: 'pipelined-2', bytes: get('/1') + post('Content-Length: 5\r\n', 'hello'), why: 'two requests in one write' },
  { name: 'pipelined-3', bytes: get('/1') + chunked(HELLO) + post('Content-Length: 3\r\n', 'abc'), why: 'three requests, every framing' },
  { name: 'pipelined-close', bytes: `GET /1 HTTP/1.1\r\n${H}Connection: close\r\n\r\n${get('/2')}`, why: 'nothing after Connection: close is read' },
  { name: 'split-head-body', bytes: [post('Content-Length: 5\r\n'), 'hel', 'lo'], why: 'body in later writes' },
  { name: 'split-crlf', bytes: ['GET / HTTP/1.1\r\nHost: x\r', '\n\r', '\n'], why: 'writes that split CRLF pairs' },
  { name: 'split-chunked', bytes: [chunked('5\r'), '\nhel', 'lo\r\n0', '\r\n\r', '\n'], why: 'chunk framing split everywhere' },
  { name: 'head-too-large', bytes: `GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, why: 'a head over both limits (16 KiB here): 431' },
  { name: 'method-lowercase', bytes: 'get / HTTP/1.1\r\nHost: x\r\n\r\n', why: 'methods are case-sensitive tokens; llhttp knows a fixed list' },
  { name: 'method-unknown', bytes: 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n', why: 'a token method llhttp does not know' },
  { name: 'version-2.0', bytes: 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', why: 'an HTTP/1.x parser cannot read HTTP/2: 505' },
  { name: 'version-1.2', bytes: 'GET / HTTP/1.2\r\nHost: x\r\n\r\n', why: 'an unknown minor version' },
  { name: 'version-lowercase', bytes: 'GET / http/1.1\r\nHost: x\r\n\r\n', why: 'the version is case-sensitive' },
  { name: 'version-trailing-space', bytes: 'GET / HTTP/1.1 \r\nHost: x\r\n\r\n', why: 'a space after the version' },
  { name: 'request-line-double-space', bytes: 'GET  / HTTP/1.1\r\nHost: x\r\n\r\n', why: 'two spaces between method and target' },
  { name: 'missing-host', bytes: 'GET / HTTP/1.1\r\n\r\n', why: 'HTTP/1.1 needs Host' },
  { name: 'header-no-colon', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n', why: 'a header line without a colon' },
  { name: 'header-empty-name', bytes: 'GET / HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n', why: 'an empty field name' },
  { name: 'header-name-bad-char', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n', why: 'a separator in a field name' },
  { name: 'header-value-ctl', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n', why: 'a CTL inside a value' },
  { name: 'header-value-del', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n', why: 'DEL inside a value' },
  { name: 'header-value-obs-text', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX: caf\xe9\r\n\r\n', why: 'obs-text is allowed in values' },
  { name: 'header-value-vt-inside', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX: a\x0bb\r\n\r\n', why: 'VT inside a value' },
  { name: 'header-value-vt-edge', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX: \x0ba\x0b\r\n\r\n', why: 'VT at the edges of a value: trimmed or refused?' },
  { name: 'body-short', bytes: post('Content-Length: 10\r\n', 'hello'), why: 'a body that has not all arrived: the probe becomes body' },
  { name: 'connection-close-then-body', bytes: `POST / HTTP/1.1\r\n${H}Connection: close\r\nContent-Length: 3\r\n\r\nabc`, why: 'a closing request with a body' },
];

export const REQUEST_CASES: RequestCase[] = [...ISSUE_CASES, ...SMUGGLING_CASES, ...VALID_CASES];

/** What the mutation generator starts from: valid requests and the interesting invalid ones. */
export const MUTATION_SOURCES: MutationSource[] = [
  { name: 'get', bytes: get() },
  { name: 'post-length', bytes: post('Content-Length: 5\r\n', 'hello') },
  { name: 'post-chunked', bytes: chunked('5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n') },
  { name: 'pipelined', bytes: get('/1') + post('Content-Length: 3\r\n', 'abc') + chunked('3\r\nxyz\r\n0\r\n\r\n') },
  { name: 'http-1.0-keep-alive', bytes: 'POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi' + get('/2') },
  { name: 'cl-te', bytes: post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\nG${get()}`) },
  { name: 'te-te', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n') },
  { name: 'expect', bytes: post('Expect: 100-continue\r\nContent-Length: 5\r\n', 'hello') },
];
