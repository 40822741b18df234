/**
 * Deliberate differences from llhttp, by name and with the reason: the differential tests
 * (http1-differential.test.ts, upstream-differential.test.ts) fail on every difference where we are
 * more lenient than llhttp unless an entry here matches it. Being stricter never needs an entry.
 * Keep each entry narrow: it must match only the difference its reason explains.
 */
import type { Outcome } from './helpers/request-differential.js';
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

export const ALLOWED_REQUEST_DIFFERENCES: AllowedRequestDifference[] = [];

export const ALLOWED_RESPONSE_DIFFERENCES: AllowedResponseDifference[] = [];
