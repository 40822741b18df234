import { fnv1a } from '../common/hash.js';
import { memoize, tokenize } from './tokenizer.js';

/** Small seedable PRNG (mulberry32): same seed, same sequence, on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the a model token cache prefix batch queue router engine request stream answer sample value ' +
  'layer tensor vector kernel memory block page shard replica node host fast quiet steady bright ' +
  'simple clear small large early late warm cold runs serves reads writes holds keeps moves finds ' +
  'builds checks and with for from into over under while then again here there today'
).split(' ');
/** The words as output tokens (with their space) and their token ids (tokenizer.ts's), made once. */
const WORD_TOKENS = WORDS.map((w) => ` ${w}`);
const WORD_IDS = WORDS.map((w) => fnv1a(w));

export interface Generation {
  /** Output tokens (each with the whitespace before it, as tokenize() splits), at most `maxTokens`. */
  tokens: string[];
  /** Their token ids (tokenIds() of the text), for the engine's block hashes. */
  ids: number[];
  finishReason: 'stop' | 'length';
}

/** The opening's tokens and ids per name and model, tokenised once (copies are extended per answer). */
const opening = memoize((text) => {
  const tokens = tokenize(text);
  return { tokens, ids: tokens.map((t) => fnv1a(t.trim())) };
}, 256);

/**
 * Deterministic answer: `Hello from <name> (model: <model>).` followed by words drawn from a PRNG
 * seeded by the mock's --seed, the model and the prompt, so the same request gets the same answer
 * (tests can assert on it) and different prompts differ. The answer is `outputTokens` long (the
 * opening too is cut to it); `maxTokens` below that cuts it with finish_reason "length".
 */
export function generate(opts: { seed: number; name: string; model: string; prompt: string; outputTokens: number; maxTokens?: number }): Generation {
  const start = opening(`Hello from ${opts.name} (model: ${opts.model}).`);
  const n = Math.min(opts.outputTokens, opts.maxTokens ?? Infinity);
  const tokens = start.tokens.slice(0, n);
  const ids = start.ids.slice(0, n);
  const rand = mulberry32(fnv1a(opts.prompt, fnv1a(opts.model, opts.seed ^ 0x9e3779b9)));
  while (tokens.length < n) {
    const w = Math.floor(rand() * WORDS.length);
    tokens.push(WORD_TOKENS[w]!);
    ids.push(WORD_IDS[w]!);
  }
  return { tokens, ids, finishReason: opts.maxTokens !== undefined && opts.maxTokens < opts.outputTokens ? 'length' : 'stop' };
}

/** Deterministic unit-length embedding of a text. */
export function embed(text: string, dims: number, seed: number): number[] {
  const rand = mulberry32(fnv1a(text, seed ^ 0x85ebca6b));
  const v = Array.from({ length: dims }, () => rand() * 2 - 1);
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}
