/**
 * Deliberate differences from llhttp, by name and with the reason: the differential tests
 * (http1-differential.test.ts, upstream-differential.test.ts) fail on every difference where we are
 * more lenient than llhttp (or read the same bytes differently) unless an entry here matches it.
 * Being stricter never needs an entry. Keep each entry narrow: it must match only the difference
 * its reason explains, so that anything else still fails.
 */
import type { Outcome, ParsedRequest } from './helpers/request-differential.js';
import { compare, FAILING } from './helpers/request-verdict.js';
import type { ResponseOutcome } from './helpers/response-differential.js';

export interface AllowedRequestDifference {
  name: string;
  reason: string;
  matches(bytes: string, ours: Outcome, llhttp: Outcome): boolean;
}

export interface AllowedResponseDifference {
  name: string;
  reason: string;
  matches(bytes: string, ours: ResponseOutcome, llhttp: ResponseOutcome): boolean;
}

/**
 * Whether we agree with llhttp once llhttp's requests are rewritten the way our server rewrites
 * them on purpose (`undefined`: the request is answered here and never handed on). The rewrite
 * must change something, or the entry would excuse a difference it does not explain.
 */
function agreesOnceRewritten(ours: Outcome, llhttp: Outcome, rewrite: (r: ParsedRequest) => ParsedRequest | undefined): boolean {
  let changed = false;
  const requests: ParsedRequest[] = [];
  for (const r of llhttp.requests) {
    const out = rewrite(r);
    if (out !== r) changed = true;
    if (out !== undefined) requests.push(out);
  }
  return changed && !FAILING.includes(compare(ours, { ...llhttp, requests }).verdict);
}

const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*([^#]*)$/i;

export const ALLOWED_REQUEST_DIFFERENCES: AllowedRequestDifference[] = [
  {
    name: 'absolute-form becomes origin-form',
    reason: 'RFC 9112 §3.2.2: a server must accept absolute-form; we hand on only its path and query, so a backend never routes on a host the client chose (issue 13, point 6)',
    matches: (_bytes, ours, llhttp) =>
      agreesOnceRewritten(ours, llhttp, (r) => {
        const m = ABSOLUTE_FORM.exec(r.url);
        return m === null ? r : { ...r, url: m[1] === '' ? '/' : m[1]!.startsWith('?') ? `/${m[1]}` : m[1]! };
      }),
  },
  {
    name: 'OPTIONS * is answered here',
    reason: 'asterisk-form asks about the server itself (RFC 9110 §9.3.7): our server answers it and never hands it on (issue 13, point 6)',
    matches: (_bytes, ours, llhttp) => agreesOnceRewritten(ours, llhttp, (r) => (r.method === 'OPTIONS' && r.url === '*' ? undefined : r)),
  },
  {
    name: 'Expect: 100-continue is answered here',
    reason: 'our server sends 100 Continue itself and removes the Expect field, so that a backend does not answer it a second time (issue 13, point 9)',
    matches: (_bytes, ours, llhttp) =>
      agreesOnceRewritten(ours, llhttp, (r) => {
        const headers: string[] = [];
        for (let i = 0; i < r.headers.length; i += 2) {
          if (r.headers[i]!.toLowerCase() === 'expect' && r.headers[i + 1]!.toLowerCase() === '100-continue') continue;
          headers.push(r.headers[i]!, r.headers[i + 1]!);
        }
        return headers.length === r.headers.length ? r : { ...r, headers };
      }),
  },
];

export const ALLOWED_RESPONSE_DIFFERENCES: AllowedResponseDifference[] = [];
