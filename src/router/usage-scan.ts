/**
 * Finds `"completion_tokens": N` in answer bytes as they are relayed, so that tokens per second
 * come from the backend's own `usage` without parsing or re-serialising the answer.
 */

const KEY = Buffer.from('"completion_tokens"', 'latin1');
/**
 * Answers and stream events put `usage` last (OpenAI, vLLM, SGLang, llama.cpp), so only this tail
 * of each read is searched: the cost per read stays small however large the read.
 */
export const USAGE_TAIL_BYTES = 512;

const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const ZERO = 0x30;
const NINE = 0x39;

function isSpace(c: number): boolean {
  return c === SPACE || c === TAB || c === CR || c === LF;
}

/**
 * The last `completion_tokens` count in `buf[start, end)`, or -1 when there is none (or it is cut
 * off at `end`). The last one, because engines that report usage on every chunk report running totals.
 */
export function completionTokens(buf: Buffer, start: number, end: number): number {
  if (end - start < KEY.length + 2) return -1;
  // a view bounds the search: bytes past `end` in a shared read buffer belong to older reads
  const view = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
  let at = view.lastIndexOf(KEY);
  while (at !== -1) {
    let i = at + KEY.length;
    while (i < view.length && isSpace(view[i]!)) i++;
    if (i < view.length && view[i] === COLON) {
      i++;
      while (i < view.length && isSpace(view[i]!)) i++;
      let n = 0;
      let digits = 0;
      while (i < view.length && view[i]! >= ZERO && view[i]! <= NINE && digits < 12) {
        n = n * 10 + (view[i]! - ZERO);
        i++;
        digits++;
      }
      // digits that reach the end of the view may continue in the next read: not a whole number
      if (digits > 0 && i < view.length) return n;
    }
    at = at === 0 ? -1 : view.lastIndexOf(KEY, at - 1);
  }
  return -1;
}
