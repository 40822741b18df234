/**
 * Compares what our upstream response parser and llhttp made of the same response bytes. The rule:
 * whatever we would relay (status, headers, body, "complete"), llhttp must read the same way, and
 * we may reuse a connection only where llhttp would. Refusing (502) where llhttp accepts, or not
 * reusing where it would, is stricter: listed, not failed.
 */
import { escapeBytes } from './bytes-text.js';
import type { ResponseEnd, ResponseOutcome } from './response-differential.js';

export type ResponseVerdict = 'agree' | 'ours-lenient' | 'ours-stricter';

export interface ResponseComparison {
  verdict: ResponseVerdict;
  why: string;
}

const sameHeaders = (a: string[], b: string[]): boolean => a.length === b.length && a.every((h, i) => h === b[i]);
const finished = (e: ResponseEnd): boolean => e.kind === 'complete' || e.kind === 'eof';

export function compareResponses(ours: ResponseOutcome, llhttp: ResponseOutcome): ResponseComparison {
  if (ours.head === undefined) {
    if (llhttp.head === undefined) return { verdict: 'agree', why: '' };
    return { verdict: 'ours-stricter', why: `ours ${describeEnd(ours.end)} before a head; llhttp read status ${llhttp.head.status}` };
  }
  if (llhttp.head === undefined) return { verdict: 'ours-lenient', why: 'ours relays a head llhttp refused' };
  if (ours.head.status !== llhttp.head.status) return { verdict: 'ours-lenient', why: `status ${ours.head.status} vs llhttp ${llhttp.head.status}` };
  if (!sameHeaders(ours.head.headers, llhttp.head.headers)) return { verdict: 'ours-lenient', why: 'headers differ' };
  if (finished(ours.end)) {
    if (!finished(llhttp.end)) return { verdict: 'ours-lenient', why: `ours ends the body (${describeEnd(ours.end)}) where llhttp does not` };
    if (ours.body !== llhttp.body) return { verdict: 'ours-lenient', why: 'bodies differ' };
    if (ours.end.kind !== llhttp.end.kind) return { verdict: 'ours-lenient', why: `ours frames the body differently (${describeEnd(ours.end)})` };
    const mine = ours.end.kind === 'complete' && ours.end.reusable;
    const theirs = llhttp.end.kind === 'complete' && llhttp.end.reusable;
    if (mine && !theirs) return { verdict: 'ours-lenient', why: 'ours reuses the connection; llhttp would not' };
    if (!mine && theirs) return { verdict: 'ours-stricter', why: 'llhttp would reuse the connection; ours does not' };
    return { verdict: 'agree', why: '' };
  }
  // we cut the body off (error or close): what we relayed must be what llhttp read so far
  if (!llhttp.body.startsWith(ours.body)) return { verdict: 'ours-lenient', why: 'the body we relayed before stopping differs' };
  if (finished(llhttp.end)) return { verdict: 'ours-stricter', why: `ours ${describeEnd(ours.end)}; llhttp ${describeEnd(llhttp.end)}` };
  return { verdict: 'agree', why: '' };
}

export function describeEnd(e: ResponseEnd): string {
  if (e.kind === 'complete') return `complete${e.reusable ? ', reusable' : ', not reusable'}`;
  if (e.kind === 'error') return `error (${e.detail})`;
  return e.kind === 'eof' ? 'complete at close' : 'cut off';
}

export function describeResponse(o: ResponseOutcome, indent = '      '): string {
  if (o.head === undefined) return `${indent}no head; ${describeEnd(o.end)}`;
  const headers: string[] = [];
  for (let i = 0; i < o.head.headers.length; i += 2) headers.push(`${escapeBytes(o.head.headers[i]!, 80)}: ${escapeBytes(o.head.headers[i + 1]!, 120)}`);
  return `${indent}${o.head.status} [${headers.join(', ')}] body ${escapeBytes(o.body, 160)}; ${describeEnd(o.end)}`;
}

export function describeResponseCase(name: string, bytes: string, ours: ResponseOutcome, llhttp: ResponseOutcome, c: ResponseComparison): string {
  return [`  ${name}: ${c.verdict} - ${c.why}`, `    bytes ${escapeBytes(bytes)}`, '    ours:', describeResponse(ours), '    llhttp:', describeResponse(llhttp)].join('\n');
}

/** A cause for grouping generated cases: what differs, and llhttp's error where it refused. */
export function responseCause(ours: ResponseOutcome, llhttp: ResponseOutcome, c: ResponseComparison): string {
  if (c.verdict === 'ours-stricter') return `ours ${describeEnd(ours.end)}`;
  return `${c.why} | llhttp: ${llhttp.end.kind === 'error' ? llhttp.end.detail : describeEnd(llhttp.end)}`;
}
