/** Builders of OpenAI response bodies and SSE chunks. Chunk strings are assembled by hand: they are the hot path. */

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export interface ChoiceResult {
  text: string;
  finishReason: string;
}

/**
 * The body of a non-streamed answer, as JSON text built by hand like the SSE chunks (field order
 * as OpenAI sends it): a third of the cost of building the object and stringifying it.
 */
export function completionBody(kind: 'chat' | 'completions', id: string, created: number, model: string, fingerprint: string, choices: ChoiceResult[], u: Usage): string {
  let list = '';
  for (let index = 0; index < choices.length; index++) {
    const c = choices[index]!;
    const text = JSON.stringify(c.text);
    const reason = JSON.stringify(c.finishReason);
    list += `${index > 0 ? ',' : ''}{"index":${index},${kind === 'chat' ? `"message":{"role":"assistant","content":${text}}` : `"text":${text}`},"logprobs":null,"finish_reason":${reason}}`;
  }
  const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
  return `{"id":${JSON.stringify(id)},"object":"${object}","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":${JSON.stringify(fingerprint)},"choices":[${list}],"usage":{"prompt_tokens":${u.prompt_tokens},"completion_tokens":${u.completion_tokens},"total_tokens":${u.total_tokens}}}`;
}

/**
 * Formats the SSE events of one streamed answer. Every event is `data: <json>\n\n`; with
 * include_usage every chunk carries `"usage":null` and a last chunk has empty choices and the usage.
 */
export class ChunkFormatter {
  private readonly head: string;
  private readonly usageField: string;
  /** A token event is tokenHeads[index] + the JSON string + tokenTail: the constant parts made once. */
  private readonly tokenHeads: string[] = [];
  private readonly tokenTail: string;

  constructor(
    private readonly kind: 'chat' | 'completions',
    id: string,
    created: number,
    model: string,
    fingerprint: string,
    includeUsage: boolean,
  ) {
    const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    this.head = `data: {"id":"${id}","object":"${object}","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":${JSON.stringify(fingerprint)},"choices":[`;
    this.usageField = includeUsage ? ',"usage":null' : '';
    this.tokenTail = `${kind === 'chat' ? '}' : ''},"logprobs":null,"finish_reason":null}]${this.usageField}}\n\n`;
  }

  /** The chat stream's opening chunk, announcing the assistant role. */
  roleChunk(index: number): string {
    return `${this.head}{"index":${index},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]${this.usageField}}\n\n`;
  }

  token(index: number, text: string): string {
    const head = (this.tokenHeads[index] ??= `${this.head}{"index":${index},${this.kind === 'chat' ? '"delta":{"content":' : '"text":'}`);
    return head + JSON.stringify(text) + this.tokenTail;
  }

  finish(index: number, reason: string): string {
    return this.kind === 'chat'
      ? `${this.head}{"index":${index},"delta":{},"logprobs":null,"finish_reason":"${reason}"}]${this.usageField}}\n\n`
      : `${this.head}{"index":${index},"text":"","logprobs":null,"finish_reason":"${reason}"}]${this.usageField}}\n\n`;
  }

  usage(u: Usage): string {
    return `${this.head}],"usage":${JSON.stringify(u)}}\n\n`;
  }
}

export const DONE = 'data: [DONE]\n\n';

export function embeddingsResponse(model: string, vectors: number[][], base64: boolean, promptTokens: number): unknown {
  return {
    object: 'list',
    data: vectors.map((v, index) => ({
      object: 'embedding',
      index,
      embedding: base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v,
    })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}
