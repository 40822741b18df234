/** Parsing and validation of OpenAI request bodies into what the simulated engine needs. */
import type { OpenAIError } from '../common/openai-error.js';

export type { OpenAIError };

export type Endpoint = 'chat' | 'completions' | 'embeddings';

export interface GenerationRequest {
  kind: 'chat' | 'completions';
  model: string;
  /** One prompt per choice (completions may batch several prompts). */
  prompts: string[];
  /** Prompt token ids as sent (token-id prompts), else undefined and derived from the text. */
  promptTokenIds: Array<number[] | undefined>;
  stream: boolean;
  includeUsage: boolean;
  maxTokens?: number;
}

export interface EmbeddingRequest {
  kind: 'embeddings';
  model: string;
  inputs: string[];
  tokenInputs: Array<number[] | undefined>;
  base64: boolean;
  dimensions?: number;
}

export type ParsedRequest = GenerationRequest | EmbeddingRequest;

const bad = (message: string, param: string | null = null): OpenAIError => ({ status: 400, message, type: 'invalid_request_error', code: null, param });

function isTokenArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);
}

/** Text of a message's content: a string, null, or an array of parts (text parts count). */
function contentText(content: unknown, i: number): string | OpenAIError {
  if (content === null || content === undefined || typeof content === 'string') return content ?? '';
  if (!Array.isArray(content)) return bad(`'messages[${i}].content' must be a string, null or an array of content parts`, `messages[${i}].content`);
  let text = '';
  for (const part of content) {
    if (typeof part !== 'object' || part === null) return bad(`'messages[${i}].content' parts must be objects`, `messages[${i}].content`);
    const t = (part as Record<string, unknown>).text;
    if (typeof t === 'string') text += t;
  }
  return text;
}

function isError(v: unknown): v is OpenAIError {
  return typeof v === 'object' && v !== null && 'status' in v && 'type' in v;
}

/**
 * Validates a body for an endpoint. The model is checked first (unknown: 404, like OpenAI and
 * vLLM), then the endpoint's required fields (400 naming the field).
 */
export function parseRequest(endpoint: Endpoint, raw: Buffer, models: ReadonlySet<string>): ParsedRequest | OpenAIError {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    return bad(`invalid JSON body: ${(err as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('request body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (b.model === undefined || b.model === null) return bad("missing required field 'model'", 'model');
  if (typeof b.model !== 'string') return bad("'model' must be a string", 'model');
  if (!models.has(b.model)) {
    return { status: 404, message: `The model \`${b.model}\` does not exist.`, type: 'invalid_request_error', code: 'model_not_found', param: 'model' };
  }
  const model = b.model;
  if (endpoint === 'embeddings') return parseEmbeddings(b, model);

  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') return bad("'stream' must be a boolean", 'stream');
  const stream = b.stream === true;
  let includeUsage = false;
  if (b.stream_options !== undefined && b.stream_options !== null) {
    if (typeof b.stream_options !== 'object' || Array.isArray(b.stream_options)) return bad("'stream_options' must be an object", 'stream_options');
    const iu = (b.stream_options as Record<string, unknown>).include_usage;
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean') return bad("'stream_options.include_usage' must be a boolean", 'stream_options.include_usage');
    includeUsage = iu === true;
  }
  const maxKey = b.max_completion_tokens !== undefined && b.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const maxRaw = b[maxKey];
  let maxTokens: number | undefined;
  if (maxRaw !== undefined && maxRaw !== null) {
    if (!Number.isInteger(maxRaw) || (maxRaw as number) < 1) return bad(`'${maxKey}' must be a positive integer`, maxKey);
    maxTokens = maxRaw as number;
  }

  if (endpoint === 'chat') {
    if (b.messages === undefined) return bad("missing required field 'messages'", 'messages');
    if (!Array.isArray(b.messages) || b.messages.length === 0) return bad("'messages' must be a non-empty array", 'messages');
    const lines: string[] = [];
    for (const [i, m] of b.messages.entries()) {
      if (typeof m !== 'object' || m === null || Array.isArray(m)) return bad(`'messages[${i}]' must be an object`, `messages[${i}]`);
      const role = (m as Record<string, unknown>).role;
      if (typeof role !== 'string') return bad(`'messages[${i}].role' must be a string`, `messages[${i}].role`);
      const text = contentText((m as Record<string, unknown>).content, i);
      if (isError(text)) return text;
      lines.push(`${role}: ${text}`);
    }
    return { kind: 'chat', model, prompts: [lines.join('\n')], promptTokenIds: [undefined], stream, includeUsage, maxTokens };
  }

  const prompt = textsOrTokens(b, 'prompt');
  if (isError(prompt)) return prompt;
  return { kind: 'completions', model, prompts: prompt.texts, promptTokenIds: prompt.ids, stream, includeUsage, maxTokens };
}

/**
 * A completions `prompt` or embeddings `input`: a string, an array of strings, a token-id array,
 * or an array of token-id arrays. Token ids are kept (they count as tokens as they are).
 */
function textsOrTokens(b: Record<string, unknown>, field: string): { texts: string[]; ids: Array<number[] | undefined> } | OpenAIError {
  const v = b[field];
  if (v === undefined) return bad(`missing required field '${field}'`, field);
  if (typeof v === 'string') return { texts: [v], ids: [undefined] };
  if (isTokenArray(v)) return { texts: [v.join(' ')], ids: [v] };
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string')) return { texts: v as string[], ids: v.map(() => undefined) };
  if (Array.isArray(v) && v.length > 0 && v.every(isTokenArray)) return { texts: (v as number[][]).map((t) => t.join(' ')), ids: v as number[][] };
  return bad(`'${field}' must be a string, an array of strings, an array of token ids or an array of token-id arrays`, field);
}

function parseEmbeddings(b: Record<string, unknown>, model: string): EmbeddingRequest | OpenAIError {
  const input = textsOrTokens(b, 'input');
  if (isError(input)) return input;
  const inputs = input.texts;
  const tokenInputs = input.ids;
  const fmt = b.encoding_format;
  if (fmt !== undefined && fmt !== null && fmt !== 'float' && fmt !== 'base64') return bad("'encoding_format' must be 'float' or 'base64'", 'encoding_format');
  let dimensions: number | undefined;
  if (b.dimensions !== undefined && b.dimensions !== null) {
    if (!Number.isInteger(b.dimensions) || (b.dimensions as number) < 1 || (b.dimensions as number) > 8192) return bad("'dimensions' must be an integer from 1 to 8192", 'dimensions');
    dimensions = b.dimensions as number;
  }
  return { kind: 'embeddings', model, inputs, tokenInputs, base64: fmt === 'base64', dimensions };
}

export function isOpenAIError(v: ParsedRequest | OpenAIError): v is OpenAIError {
  return 'status' in v;
}
