import { promptText } from './prompt-text.js';

/** What routing needs to know about a request, read from the raw body without re-serialising it. */
export interface RequestInfo {
  model: string | undefined;
  stream: boolean;
  /** A stream whose client asked for `usage` in its last chunk (`stream_options.include_usage`). */
  streamUsage?: boolean;
  promptCacheKey: string | undefined;
  /** Bytes of message text (or prompt text) used for size classes. */
  size: number;
  sessionKey: string | undefined;
  /** The raw body, for policies that look at the prompt (cache-aware). */
  body: Buffer | undefined;
  /**
   * The prompt text (see prompt-text.ts), built only for a model routed by a cache policy (the
   * `wantsPrompt` of extractInto): other requests pay nothing for it.
   */
  prompt?: string | undefined;
  /**
   * Order in the wait queue when every backend of the model is full: higher first, first come first
   * served within a priority (absent: 0). Set from the client's API key when keys are configured.
   */
  priority?: number;
}

/** Assumed bytes per token id when a prompt is given as token ids. */
const BYTES_PER_TOKEN_ID = 4;

function textBytes(v: unknown): number {
  return typeof v === 'string' ? Buffer.byteLength(v) : 0;
}

/** Message text size: strings, and `text`/`content` strings of content parts; other shapes count 0. */
function messagesSize(messages: unknown[]): number {
  let size = 0;
  for (const m of messages) {
    if (typeof m !== 'object' || m === null) continue;
    const content = (m as Record<string, unknown>).content;
    if (typeof content === 'string') size += Buffer.byteLength(content);
    else if (Array.isArray(content)) {
      for (const part of content) {
        if (typeof part === 'object' && part !== null) size += textBytes((part as Record<string, unknown>).text) + textBytes((part as Record<string, unknown>).content);
      }
    }
  }
  return size;
}

/** Prompt size: a string, strings, token ids (4 bytes each) or arrays of those. */
function promptSize(prompt: unknown): number {
  if (typeof prompt === 'string') return Buffer.byteLength(prompt);
  if (typeof prompt === 'number') return BYTES_PER_TOKEN_ID;
  if (Array.isArray(prompt)) {
    let size = 0;
    for (const p of prompt) size += promptSize(p);
    return size;
  }
  return 0;
}

/**
 * Fills `model`, `stream`, `prompt_cache_key` and the text size of `info` from the body (one object
 * per request, no copies). Each field is read on its own, so an unexpected shape of one (token-id
 * prompt, numeric model, odd messages) never hides the others.
 */
export function extractInto<T extends Pick<RequestInfo, 'model' | 'stream' | 'promptCacheKey' | 'size' | 'streamUsage' | 'prompt'>>(
  info: T,
  body: Buffer | undefined,
  /** Whether the model's policy matches on prompt text (then `prompt` is filled); absent: no policy does. */
  wantsPrompt?: (model: string | undefined) => boolean,
): T {
  if (!body || body.length === 0) return info;
  const first = body[0];
  // Only JSON objects carry routing fields; skip parsing anything else (cheap check of the first byte).
  if (first !== 0x7b && first !== 0x20 && first !== 0x0a && first !== 0x0d && first !== 0x09) return info;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return info;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return info;
  const b = parsed as Record<string, unknown>;
  info.model = typeof b.model === 'string' ? b.model : undefined;
  info.stream = b.stream === true;
  if (info.stream) {
    const so = b.stream_options;
    info.streamUsage = typeof so === 'object' && so !== null && (so as Record<string, unknown>).include_usage === true;
  }
  info.promptCacheKey = typeof b.prompt_cache_key === 'string' && b.prompt_cache_key !== '' ? b.prompt_cache_key : undefined;
  info.size = Array.isArray(b.messages) ? messagesSize(b.messages) : promptSize(b.prompt);
  if (wantsPrompt !== undefined && wantsPrompt(info.model)) info.prompt = promptText(b);
  return info;
}

/**
 * Session key for affinity: the body's `prompt_cache_key`, else an `X-Session-Id` header, else
 * `X-Forwarded-For` (first entry) + User-Agent, as the original did. The TCP peer is not used.
 */
export function sessionKey(model: string | undefined, promptCacheKey: string | undefined, headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  const scope = model ?? 'default';
  if (promptCacheKey !== undefined) return `${scope}:prompt_cache:${promptCacheKey}`;
  const sid = headers['x-session-id'];
  if (typeof sid === 'string' && sid !== '') return `${scope}:session:${sid}`;
  const xff = headers['x-forwarded-for'];
  if (typeof xff === 'string') {
    const comma = xff.indexOf(',');
    const ip = (comma === -1 ? xff : xff.slice(0, comma)).trim();
    if (ip !== '') return `${scope}:ip:${ip}|${headers['user-agent'] ?? ''}`;
  }
  return undefined;
}
