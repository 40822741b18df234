/**
 * Finds `"completion_tokens": N` in answer bytes as they are relayed, so that tokens per second
 * come from the backend's own `usage` without parsing or re-serialising the answer.
 */

const COMPLETION_KEY = Buffer.from('"completion_tokens"', 'latin1');
/** `usage.total_tokens` (prompt and completion): what per-key token limits count. */
const TOTAL_KEY = Buffer.from('"total_tokens"', 'latin1');
/**
 * Answers and stream events put `usage` last (OpenAI, vLLM, SGLang, llama.cpp), so only this tail
 * of each read is searched: the cost per read stays small however large the read.
 */
export const USAGE_TAIL_BYTES = 512;

const QUOTE = 0x22;
const LAST_LETTER = 0x73; // the `s` of `tokens`
const COLON = 0x3a;
const ZERO = 0x30;
const NINE = 0x39;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

/** Whether `key` ends at `buf[at]` and starts at or after `from`. */
function keyEndsAt(key: Buffer, buf: Buffer, at: number, from: number): boolean {
  const last = key.length - 1;
  if (at - last < from) return false;
  for (let k = last - 2, i = at - 2; k >= 0; k--, i--) if (buf[i] !== key[k]) return false;
  return true;
}

/**
 * The last `completion_tokens` count in `buf[start, end)`, or -1 when there is none (or it is cut
 * off at `end`). The last one, because engines that report usage on every chunk report running
 * totals. A backward scan in place: no view of the shared read buffer is made, and it stops at the
 * first (from the end) key, which in an answer is a few dozen bytes from its end.
 */
export function completionTokens(buf: Buffer, start: number, end: number): number {
  return lastCount(COMPLETION_KEY, buf, start, end);
}

/** The last `total_tokens` count in `buf[start, end)`, as completionTokens does it. */
export function totalTokens(buf: Buffer, start: number, end: number): number {
  return lastCount(TOTAL_KEY, buf, start, end);
}

/** The last count after `key` (a quoted name ending in `s"`) in `buf[start, end)`, or -1. */
function lastCount(key: Buffer, buf: Buffer, start: number, end: number): number {
  // the key's closing quote, preceded by its `s`
  for (let at = end - 1; at >= start + key.length - 1; at--) {
    if (buf[at] !== QUOTE || buf[at - 1] !== LAST_LETTER || !keyEndsAt(key, buf, at, start)) continue;
    let i = at + 1;
    while (i < end && isSpace(buf[i]!)) i++;
    if (i >= end || buf[i] !== COLON) continue;
    i++;
    while (i < end && isSpace(buf[i]!)) i++;
    let n = 0;
    let digits = 0;
    while (i < end && buf[i]! >= ZERO && buf[i]! <= NINE && digits < 12) {
      n = n * 10 + (buf[i]! - ZERO);
      i++;
      digits++;
    }
    // digits that reach the end of the window may continue in the next read: not a whole number
    if (digits > 0 && i < end) return n;
  }
  return -1;
}
