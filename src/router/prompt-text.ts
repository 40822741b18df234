/**
 * The prompt text a cache-aware policy matches on, from a parsed request body: what an engine's
 * prefix cache keys on, in order, without the chat template (which is the same for every request
 * of a model, so it changes no match). Chat: every message in order, its role, its text (strings
 * or text parts; an image part counts as its URL), its tool calls; completions: the prompt (token
 * ids become one character each). A chat's next turn starts with the text of the turn before.
 * Built only for models routed by a cache policy (see RequestInfo.prompt).
 */

/** Separators that do not occur in ordinary text: a role cannot run into the message before it. */
const MESSAGE = '\x1e';
const ROLE_END = '\x1f';
/** Token ids turned into characters this many at a time (a spread of 100k arguments would overflow the stack). */
const ID_CHUNK = 8192;

function partText(part: unknown): string {
  if (typeof part === 'string') return part;
  if (typeof part !== 'object' || part === null) return '';
  const p = part as Record<string, unknown>;
  if (typeof p.text === 'string') return p.text;
  const image = p.image_url;
  if (typeof image === 'object' && image !== null && typeof (image as Record<string, unknown>).url === 'string') return (image as Record<string, unknown>).url as string;
  if (typeof image === 'string') return image;
  return '';
}

function messageText(m: unknown): string {
  if (typeof m !== 'object' || m === null) return '';
  const msg = m as Record<string, unknown>;
  let s = MESSAGE + (typeof msg.role === 'string' ? msg.role : '') + ROLE_END;
  const content = msg.content;
  if (typeof content === 'string') s += content;
  else if (Array.isArray(content)) for (const part of content) s += partText(part);
  if (msg.tool_calls !== undefined && msg.tool_calls !== null) s += JSON.stringify(msg.tool_calls);
  return s;
}

function idsText(ids: readonly unknown[]): string {
  let s = '';
  for (let i = 0; i < ids.length; i += ID_CHUNK) {
    const chunk = ids.slice(i, i + ID_CHUNK).map((x) => (typeof x === 'number' ? x : 0));
    s += String.fromCharCode(...chunk);
  }
  return s;
}

function completionText(prompt: unknown): string | undefined {
  if (typeof prompt === 'string') return prompt;
  if (!Array.isArray(prompt) || prompt.length === 0) return undefined;
  if (typeof prompt[0] === 'number') return idsText(prompt);
  // a batch: all its prompts go to one backend, matched as one text
  let s = '';
  for (const p of prompt) s += (typeof p === 'string' ? p : Array.isArray(p) ? idsText(p) : '') + MESSAGE;
  return s;
}

/** The prompt text of a parsed body, or undefined when it has neither messages nor a prompt. */
export function promptText(body: Record<string, unknown>): string | undefined {
  const messages = body.messages;
  if (Array.isArray(messages)) {
    let s = '';
    for (const m of messages) s += messageText(m);
    return s;
  }
  return completionText(body.prompt);
}
