/**
 * Compares what our server and llhttp made of the same request bytes, and writes it up.
 *
 * The rule (issue 13): every request our server accepts, llhttp must accept with the same framing:
 * same method, target, version, headers and body, in the same order, with the next request starting
 * at the same byte (the harness's probe request shows that). Our server may be stricter: where it
 * refuses or stops and llhttp goes on, that is listed, not failed.
 */
import { METHODS } from 'node:http';
import { escapeBytes } from './bytes-text.js';
import type { Outcome, ParsedRequest } from './request-differential.js';

export type Verdict =
  /** Same requests, and both refused, or neither did. */
  | 'agree'
  /** We accepted a request llhttp refused, did not finish, or read differently: fails unless allow-listed. */
  | 'ours-lenient'
  /**
   * llhttp refused; we neither refused nor closed but still read a request (a head llhttp refused, or
   * a body it found malformed) that we would hand on once complete: fails unless allow-listed. (We
   * report only complete requests, so this is how an accepted head shows when the probe cannot
   * complete its body.) Also: our server stopped reading altogether.
   */
  | 'ours-reads-on'
  /** We refused (or stopped) where llhttp accepted more: allowed, listed. */
  | 'ours-stricter';

/** The verdicts a test fails on (unless allow-listed). */
export const FAILING: readonly Verdict[] = ['ours-lenient', 'ours-reads-on'];

export interface Comparison {
  verdict: Verdict;
  /** Index of the first request that differs, for the report. */
  at: number;
  why: string;
}

function sameRequest(a: ParsedRequest, b: ParsedRequest): boolean {
  return a.complete && b.complete && a.method === b.method && a.url === b.url && a.version === b.version && a.body === b.body && a.headers.length === b.headers.length && a.headers.every((h, i) => h === b.headers[i]);
}

/** Which field of the first differing request differs. */
function difference(a: ParsedRequest, b: ParsedRequest | undefined): string {
  if (b === undefined) return 'llhttp has no such request';
  if (!b.complete) return 'llhttp has not finished its body';
  const fields: string[] = [];
  if (a.method !== b.method) fields.push('method');
  if (a.url !== b.url) fields.push('target');
  if (a.version !== b.version) fields.push('version');
  if (a.headers.join('\0') !== b.headers.join('\0')) fields.push('headers');
  if (a.body !== b.body) fields.push('body');
  return `${fields.join(', ')} differ`;
}

export function compare(ours: Outcome, llhttp: Outcome): Comparison {
  let k = 0;
  while (k < ours.requests.length && k < llhttp.requests.length && sameRequest(ours.requests[k]!, llhttp.requests[k]!)) k++;
  if (ours.requests.length > k) return { verdict: 'ours-lenient', at: k, why: `request ${k + 1}: ${difference(ours.requests[k]!, llhttp.requests[k])}` };
  if (ours.end.kind === 'stalled') return { verdict: 'ours-reads-on', at: k, why: `our server stopped reading the bytes; llhttp ${describeEnd(llhttp)}` };
  const oursRefused = ours.end.kind === 'refused';
  const llhttpStopped = llhttp.end.kind === 'refused' || llhttp.end.kind === 'tunnel';
  // llhttp took more requests than we did; one whose body it then refused counts as refused
  const more = llhttp.requests.length - k;
  if (more > 1 || (more === 1 && (llhttp.requests[k]!.complete || !llhttpStopped))) {
    return { verdict: 'ours-stricter', at: k, why: `llhttp accepted ${more} more request(s)${llhttp.requests.at(-1)!.complete ? '' : ' (the last one incomplete)'}; ours ${describeEnd(ours)}` };
  }
  if (llhttpStopped && !oursRefused && ours.end.kind !== 'closed') return { verdict: 'ours-reads-on', at: k, why: `llhttp ${describeEnd(llhttp)}; ours ${describeEnd(ours)}` };
  if (oursRefused && !llhttpStopped) return { verdict: 'ours-stricter', at: k, why: `ours ${describeEnd(ours)}; llhttp ${describeEnd(llhttp)}` };
  return { verdict: 'agree', at: k, why: '' };
}

function describeEnd(o: Outcome): string {
  const e = o.end;
  return e.kind === 'refused' ? `refused ${e.status} (${e.detail})` : e.kind;
}

function describeRequest(r: ParsedRequest): string {
  const headers: string[] = [];
  for (let i = 0; i < r.headers.length; i += 2) headers.push(`${escapeBytes(r.headers[i]!, 80)}: ${escapeBytes(r.headers[i + 1]!, 120)}`);
  return `${escapeBytes(r.method, 40)} ${escapeBytes(r.url, 120)} HTTP/${r.version} [${headers.join(', ')}] body ${escapeBytes(r.body, 160)}${r.complete ? '' : ' (incomplete)'}`;
}

export function describeOutcome(o: Outcome, indent = '    '): string {
  const lines = o.requests.map((r, i) => `${indent}${i + 1}. ${describeRequest(r)}`);
  lines.push(`${indent}then ${describeEnd(o)}`);
  return lines.join('\n');
}

/** One case's bytes and both results, the way a failure prints it. */
export function describeCase(name: string, bytes: string, ours: Outcome, llhttp: Outcome, c: Comparison): string {
  return [`  ${name}: ${c.verdict} - ${c.why}`, `    bytes ${escapeBytes(bytes)} (+ probe)`, '    ours:', describeOutcome(ours, '      '), '    llhttp:', describeOutcome(llhttp, '      ')].join('\n');
}

/**
 * A cause for grouping generated cases. Where llhttp read the same request differently, the field
 * that differs; where it refused it, llhttp's error (it names what is wrong with the bytes), except
 * for methods: llhttp knows a fixed list, so any garbage that ends up as a method shows here first.
 */
export function cause(ours: Outcome, llhttp: Outcome, c: Comparison): string {
  const end = llhttp.end.kind === 'refused' ? llhttp.end.detail : `llhttp ${llhttp.end.kind}`;
  if (c.verdict === 'ours-stricter') return `ours ${describeEnd(ours)}`;
  if (c.verdict === 'ours-reads-on') return `llhttp refused, ours reads on: ${end}`;
  const mine = ours.requests[c.at]!;
  const theirs = llhttp.requests[c.at];
  if (theirs !== undefined && theirs.complete) return difference(mine, theirs);
  if (theirs === undefined && !METHODS.includes(mine.method)) return 'a method llhttp does not know';
  return `${theirs === undefined ? 'llhttp refused the head' : 'llhttp refused the body'}: ${end}`;
}

export const groupKey = (ours: Outcome, llhttp: Outcome, c: Comparison): string => `${c.verdict}: ${cause(ours, llhttp, c)}`;
