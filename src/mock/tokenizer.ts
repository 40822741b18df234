import { fnv1a } from '../common/hash.js';

/**
 * The mock's tokenisation, simple and documented so token counts are predictable without any
 * model download: a token is a run of ASCII letters/digits or any single other non-space
 * character, together with the whitespace before it. "Hello, world!" is 4 tokens:
 * "Hello", ",", " world", "!". Joining the tokens gives the text back (minus trailing spaces).
 */
const TOKEN = /\s*(?:[A-Za-z0-9]+|[^\sA-Za-z0-9])/g;

export function tokenize(text: string): string[] {
  return text.match(TOKEN) ?? [];
}

export function countTokens(text: string): number {
  TOKEN.lastIndex = 0;
  let n = 0;
  while (TOKEN.exec(text) !== null) n++;
  return n;
}

/** Token ids of a text (ids are hashes of the token strings, whitespace trimmed). */
export function tokenIds(text: string): number[] {
  return tokenize(text).map((t) => fnv1a(t.trim()));
}

/**
 * Memoises a string function over recent inputs (bounded, oldest dropped first): repeated prompts
 * and per-model answer prefixes are tokenised once, which keeps the mock far cheaper than a router.
 */
export function memoize<T>(fn: (text: string) => T, capacity = 1024): (text: string) => T {
  const cache = new Map<string, T>();
  return (text: string) => {
    let v = cache.get(text);
    if (v === undefined) {
      v = fn(text);
      if (cache.size >= capacity) cache.delete(cache.keys().next().value as string);
      cache.set(text, v);
    }
    return v;
  };
}
