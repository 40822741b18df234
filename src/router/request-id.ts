import { randomBytes } from 'node:crypto';

/**
 * Request ids the router makes: a random per-process prefix, `-` and a counter in base 36 (unique,
 * and far cheaper than a UUID each). The request log writes the counter's digits after a
 * pre-encoded prefix instead of copying the id character by character.
 */
export const REQUEST_ID_PREFIX = randomBytes(6).toString('hex');
let counter = 0;

/** The next request's counter (from 1). */
export function nextRequestNumber(): number {
  return ++counter;
}

export function requestIdOf(n: number): string {
  return `${REQUEST_ID_PREFIX}-${n.toString(36)}`;
}
