/**
 * Response bytes for the differential test of the router's upstream response parser against llhttp
 * (test/upstream-differential.test.ts): the points issue 13 names, response-splitting and framing
 * cases, valid responses as the baseline, and the sources of the seeded mutation generator. Bytes
 * are latin1 strings (one character per byte).
 */
import type { MutationSource } from './helpers/seeded-mutations.js';

export interface ResponseCase {
  name: string;
  bytes: string;
  why: string;
  /** The request it answers (HEAD: no body whatever the head says). */
  method?: 'GET' | 'HEAD';
}

const ok = (headers: string, body = ''): string => `HTTP/1.1 200 OK\r\n${headers}\r\n${body}`;
const chunked = (body: string, te = 'Transfer-Encoding: chunked\r\n'): string => ok(te, body);
const HELLO = '5\r\nhello\r\n0\r\n\r\n';

/** The points issue 13 names. */
export const ISSUE_RESPONSES: ResponseCase[] = [
  { name: 'fold-with-bare-lf-set-cookie', bytes: ok('X-A: a\r\n b\nSet-Cookie: evil=1\r\nContent-Length: 0\r\n'), why: 'response splitting: a folded line hiding a bare LF and a second header' },
  { name: 'name-with-lf', bytes: ok('X-A\nSet-Cookie: evil=1\r\nContent-Length: 0\r\n'), why: 'a header name with LF: LF-tolerant clients see a Set-Cookie line' },
  { name: 'name-with-cr', bytes: ok('X-A\r: 1\r\nContent-Length: 0\r\n'), why: 'a header name with CR' },
  { name: 'name-crlf-ends-head-early', bytes: ok('Content-Length: 5\r\nX\r\n\r\nY: 1\r\n', 'hello'), why: 'a "name" that is an empty line: the head ends there' },
  { name: 'cl-folded', bytes: ok('Content-Length: 2\r\n 7\r\n', 'hi'), why: 'a folded length: framed by 2, relayed as "2 7"' },
  { name: 'status-2e2', bytes: 'HTTP/1.1 2e2 OK\r\nContent-Length: 0\r\n\r\n', why: 'Number("2e2") is 200; the status is three digits' },
  { name: 'cl-list-same', bytes: ok('Content-Length: 5, 5\r\n', 'hello'), why: 'a list of equal lengths, relayed as a list' },
  { name: 'name-with-space', bytes: ok('X A: 1\r\nContent-Length: 0\r\n'), why: 'a name that is not a token' },
  { name: 'name-with-at', bytes: ok('X@A: 1\r\nContent-Length: 0\r\n'), why: 'a name that is not a token' },
  { name: 'name-space-before-colon', bytes: ok('Content-Length : 5\r\n', 'hello'), why: 'whitespace between name and colon' },
  { name: 'obs-fold', bytes: ok('X-A: a\r\n b\r\nContent-Length: 0\r\n'), why: 'obs-fold: refuse (502) rather than relay' },
  { name: 'obs-fold-tab', bytes: ok('X-A: a\r\n\tb\r\nContent-Length: 0\r\n'), why: 'obs-fold with HTAB' },
  { name: 'bare-lf-head', bytes: 'HTTP/1.1 200 OK\nContent-Length: 2\n\nhi', why: 'bare LF line ends throughout' },
  { name: 'bare-lf-one-line', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\nX: y\r\n\r\nhi', why: 'one header line ending in a bare LF' },
  { name: 'chunk-ext-ctl', bytes: chunked('5;\x01\r\nhello\r\n0\r\n\r\n'), why: 'a CTL in a chunk extension, relayed as is in raw mode' },
  { name: 'chunk-size-2-junk', bytes: chunked('2 junk\r\nhi\r\n0\r\n\r\n'), why: 'text after a chunk size' },
  { name: 'chunk-size-a-space', bytes: chunked('a \r\n0123456789\r\n0\r\n\r\n'), why: 'whitespace after a chunk size' },
  { name: 'chunk-ext-bare-lf', bytes: chunked('5;\nhello\r\n0\r\n\r\n'), why: 'a bare LF inside a chunk-size line' },
  { name: 'trailer-bare-lf-response', bytes: chunked('0\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), why: 'a body end LF-tolerant parsers see early: a second response poisons the pool' },
  { name: 'trailer-bad-name', bytes: chunked('0\r\nBad Name: 1\r\n\r\n'), why: 'a trailer name that is not a token' },
  { name: 'trailer-no-colon', bytes: chunked('0\r\nnocolon\r\n\r\n'), why: 'a trailer line without a colon' },
];

/** Framing, status-line and field cases beyond the issue's list. */
export const FRAMING_RESPONSES: ResponseCase[] = [
  { name: 'cl-and-te', bytes: ok('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', HELLO), why: 'both framings: chunked wins, the connection must not be reused' },
  { name: 'te-and-cl', bytes: ok('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', HELLO), why: 'both framings, the other order' },
  { name: 'cl-conflicting', bytes: ok('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'), why: 'two different lengths' },
  { name: 'cl-duplicate-same', bytes: ok('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), why: 'two equal lengths' },
  { name: 'cl-list-conflicting', bytes: ok('Content-Length: 5, 6\r\n', 'hello!'), why: 'a list of different lengths' },
  { name: 'cl-negative', bytes: ok('Content-Length: -1\r\n', 'hello'), why: 'a sign is not a digit' },
  { name: 'cl-vt', bytes: ok('Content-Length: 5\x0b\r\n', 'hello'), why: 'VT is not OWS' },
  { name: 'cl-huge', bytes: ok('Content-Length: 99999999999999999999\r\n', 'hello'), why: 'overflows 64 bits' },
  { name: 'te-vt-chunked', bytes: chunked(HELLO, 'Transfer-Encoding: \x0bchunked\r\n'), why: 'VT is not OWS' },
  { name: 'te-chunked-nbsp', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\xa0\r\n'), why: 'NBSP is not OWS' },
  { name: 'te-gzip-chunked', bytes: chunked(HELLO, 'Transfer-Encoding: gzip, chunked\r\n'), why: 'chunked last: framed by chunked' },
  { name: 'te-chunked-gzip', bytes: chunked(HELLO, 'Transfer-Encoding: chunked, gzip\r\n'), why: 'chunked not last: a response body then runs to the close (RFC 9112 §6.3)' },
  { name: 'te-chunked-trailing-tab', bytes: chunked(HELLO, 'Transfer-Encoding: chunked\t\r\n'), why: 'HTAB is OWS, but llhttp reads the coding with the tab (and the body to the close)' },
  { name: 'cl-trailing-tab', bytes: ok('Content-Length: 5\t\r\n', 'hello'), why: 'HTAB is OWS; llhttp refuses it after a length' },
  { name: 'te-identity', bytes: chunked('hello', 'Transfer-Encoding: identity\r\n'), why: 'an unknown coding: the body runs to the close' },
  { name: 'status-no-reason', bytes: 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n', why: 'the reason phrase may be missing' },
  { name: 'status-empty-reason', bytes: 'HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n', why: 'an empty reason phrase' },
  { name: 'status-two-digits', bytes: 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n', why: 'the status is three digits' },
  { name: 'status-four-digits', bytes: 'HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n', why: 'the status is three digits' },
  { name: 'status-no-space', bytes: 'HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n', why: 'SP between status and reason' },
  { name: 'status-plus', bytes: 'HTTP/1.1 +20 OK\r\nContent-Length: 0\r\n\r\n', why: 'Number("+20") is 20' },
  { name: 'status-hex', bytes: 'HTTP/1.1 0x1 OK\r\nContent-Length: 0\r\n\r\n', why: 'Number("0x1") is 1' },
  { name: 'status-space-digits', bytes: 'HTTP/1.1  20 OK\r\nContent-Length: 0\r\n\r\n', why: 'Number(" 20") is 20' },
  { name: 'status-600', bytes: 'HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n', why: 'beyond the defined classes' },
  { name: 'status-reason-ctl', bytes: 'HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n', why: 'a CTL in the reason phrase' },
  { name: 'version-1.0-close', bytes: 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi', why: 'HTTP/1.0 without keep-alive: not reusable' },
  { name: 'version-1.0-keep-alive', bytes: 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi', why: 'HTTP/1.0 with keep-alive: reusable' },
  { name: 'version-1.0-keep-alive-nbsp', bytes: 'HTTP/1.0 200 OK\r\nConnection: \xa0keep-alive\r\nContent-Length: 2\r\n\r\nhi', why: 'NBSP is not OWS: no keep-alive, not reusable' },
  { name: 'continue-http-1.0', bytes: `HTTP/1.0 100 Continue\r\n\r\n${ok('Content-Length: 2\r\n', 'hi')}`, why: 'an interim answer in HTTP/1.0 (llhttp: the connection closes after it)' },
  { name: 'version-2', bytes: 'HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n', why: 'not HTTP/1.x' },
  { name: 'version-1.2', bytes: 'HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n', why: 'an unknown minor version' },
  { name: 'value-nul', bytes: ok('X: a\x00b\r\nContent-Length: 0\r\n'), why: 'NUL in a value' },
  { name: 'value-ctl', bytes: ok('X: a\x01b\r\nContent-Length: 0\r\n'), why: 'a CTL in a value' },
  { name: 'value-vt-edges', bytes: ok('X: \x0ba\x0b\r\nContent-Length: 0\r\n'), why: 'VT at the edges of a value: trimmed or refused?' },
  { name: 'value-obs-text', bytes: ok('X: caf\xe9\r\nContent-Length: 0\r\n'), why: 'obs-text is allowed' },
  { name: 'value-bare-cr-end', bytes: ok('X: a\r\r\nContent-Length: 0\r\n'), why: 'a bare CR before the CRLF' },
  { name: 'chunk-size-overflow', bytes: chunked('ffffffffffffffffff\r\nhello\r\n0\r\n\r\n'), why: 'must not wrap' },
  { name: 'chunk-size-0x', bytes: chunked('0x5\r\nhello\r\n0\r\n\r\n'), why: 'not hex' },
  { name: 'chunk-ext-quoted', bytes: chunked('5;a="b c"\r\nhello\r\n0\r\n\r\n'), why: 'a quoted extension value' },
  { name: 'chunk-data-too-long', bytes: chunked('5\r\nhelloX\r\n0\r\n\r\n'), why: 'more data than the size says' },
  { name: 'trailer-one', bytes: chunked('5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n'), why: 'a trailer field' },
  { name: 'trailer-obs-fold', bytes: chunked('0\r\nX-T: 1\r\n 2\r\n\r\n'), why: 'obs-fold in the trailers' },
  { name: 'trailer-content-length', bytes: chunked('5\r\nhello\r\n0\r\nContent-Length: 3\r\n\r\n'), why: 'a framing field in the trailers' },
  { name: 'trailer-nul', bytes: chunked('0\r\nX-T: a\x00b\r\n\r\n'), why: 'NUL in a trailer' },
  { name: 'double-response', bytes: ok('Content-Length: 2\r\n', 'hiHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), why: 'bytes after the response: never reuse' },
  { name: 'switching-protocols', bytes: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n', why: 'a relay did not ask for an upgrade' },
];

/** Responses every strict parser reads the same way: the baseline. */
export const VALID_RESPONSES: ResponseCase[] = [
  { name: 'length', bytes: ok('Content-Length: 5\r\n', 'hello'), why: 'a Content-Length body' },
  { name: 'chunked', bytes: chunked('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'), why: 'a chunked body' },
  { name: 'close-delimited', bytes: ok('', 'hello'), why: 'no framing: the body runs to the close' },
  { name: 'close-header', bytes: ok('Connection: close\r\nContent-Length: 2\r\n', 'hi'), why: 'Connection: close: not reusable' },
  { name: 'no-content', bytes: 'HTTP/1.1 204 No Content\r\n\r\n', why: '204 has no body' },
  { name: 'not-modified', bytes: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', why: '304 has no body whatever the length says' },
  { name: 'head-with-length', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', why: 'the answer to HEAD has no body', method: 'HEAD' },
  { name: 'continue-then-ok', bytes: `HTTP/1.1 100 Continue\r\n\r\n${ok('Content-Length: 2\r\n', 'hi')}`, why: 'an interim answer, then the final one' },
  { name: 'ows-around-value', bytes: ok('X-A: \t a b \t\r\nContent-Length: 0\r\n'), why: 'OWS is not part of a value' },
  { name: 'chunk-ext-plain', bytes: chunked('5;a=b\r\nhello\r\n0\r\n\r\n'), why: 'a chunk extension as the grammar has it' },
  { name: 'truncated-length', bytes: ok('Content-Length: 10\r\n', 'hello'), why: 'the connection closes 5 bytes short' },
  { name: 'truncated-chunked', bytes: chunked('5\r\nhello\r\n'), why: 'the connection closes before the last chunk' },
];

export const RESPONSE_CASES: ResponseCase[] = [...ISSUE_RESPONSES, ...FRAMING_RESPONSES, ...VALID_RESPONSES];

export const RESPONSE_MUTATION_SOURCES: MutationSource[] = [
  { name: 'length', bytes: ok('Content-Type: text/plain\r\nContent-Length: 5\r\n', 'hello') },
  { name: 'chunked', bytes: chunked('5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n') },
  { name: 'close-delimited', bytes: 'HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nhello' },
  { name: 'keep-alive-1.0', bytes: 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi' },
  { name: 'continue', bytes: `HTTP/1.1 100 Continue\r\n\r\n${ok('Content-Length: 2\r\n', 'hi')}` },
];
