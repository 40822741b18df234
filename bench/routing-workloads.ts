/**
 * The request streams of `npm run bench:routing`, generated from a seed: the same seed gives the
 * same requests in the same order, whatever the answers' timing (a chat's history quotes the
 * answers as the mocks' generator writes them, computed here, not read back), so every policy is
 * measured on identical traffic. Text is words of a made-up vocabulary, one mock token each (src/mock/tokenizer.ts:
 * " word" is one token), so prompt lengths in tokens are known without tokenising.
 */
import { generate, mulberry32 } from '../src/mock/text-generator.js';
import { countTokens } from '../src/mock/tokenizer.js';

export const WORKLOAD_NAMES = ['chat', 'docs', 'random', 'hot'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface WorkRequest {
  messages: ChatMessage[];
  /** What a client would send as prompt_cache_key: the session, document or prefix (only the affinity run sends it). */
  key: string;
  /** The shared prefix the request belongs to (system prompt, document, hot prefix), -1 for none. */
  group: number;
  /** Prompt length in the mock's tokens, roles and separators included. */
  promptTokens: number;
}

export interface Workload {
  name: WorkloadName;
  /** One line on what it is, for the report. */
  describe: string;
  next(): WorkRequest;
}

/** Sizes of the workloads (tokens); small enough for a 2-core machine, shaped like the real thing. */
export interface WorkloadShape {
  /** chat: distinct system prompts, their length, sessions open at once, turns per session, message lengths. */
  chatSystems: number;
  chatSystemTokens: number;
  chatSessions: number;
  chatTurns: [number, number];
  chatUserTokens: [number, number];
  /** Answer length in the history when the mocks' answers are not reproduced (MockAnswers). */
  chatAnswerTokens: number;
  /** docs: documents, their length, question lengths. */
  docs: number;
  docTokens: number;
  questionTokens: [number, number];
  /** random: prompt lengths. */
  randomTokens: [number, number];
  /** hot: prefixes, their length, the hot one's share of the traffic. */
  hotPrefixes: number;
  hotPrefixTokens: number;
  hotShare: number;
}

/**
 * The mocks' answer generation, when they share one --seed and --name: a chat's history then
 * quotes each answer exactly as the mock wrote it, so the engine that wrote it finds it in its
 * prefix cache at the next turn, as a real engine would (the mock hashes its output's blocks).
 */
export interface MockAnswers {
  seed: number;
  name: string;
  model: string;
  outputTokens: number;
  maxTokens: number;
}

/**
 * Against 1000 KV blocks (16k tokens) per engine (bench/routing.ts): each workload's shared text
 * (chat ~8k tokens of system prompts and ~25k of open sessions' histories, docs 24k, hot 24k)
 * exceeds one engine's cache and fits in four.
 */
export const DEFAULT_SHAPE: WorkloadShape = {
  chatSystems: 8,
  chatSystemTokens: 1000,
  chatSessions: 64,
  chatTurns: [4, 12],
  chatUserTokens: [30, 100],
  chatAnswerTokens: 24,
  docs: 12,
  docTokens: 2000,
  questionTokens: [20, 60],
  randomTokens: [1000, 2000],
  hotPrefixes: 16,
  hotPrefixTokens: 1500,
  hotShare: 0.5,
};

/** Letters only: each word is one mock token. */
function vocabulary(rand: () => number, size: number): string[] {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const words = new Set<string>();
  while (words.size < size) {
    const len = 3 + Math.floor(rand() * 7);
    let w = '';
    for (let i = 0; i < len; i++) w += letters[Math.floor(rand() * 26)];
    words.add(w);
  }
  return [...words];
}

class TextSource {
  private readonly words: string[];
  constructor(readonly rand: () => number) {
    this.words = vocabulary(rand, 4096);
  }
  /** `n` words (n tokens once the mock tokenises them). */
  text(n: number): string {
    const out: string[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.words[Math.floor(this.rand() * this.words.length)]!;
    return out.join(' ');
  }
  int([lo, hi]: [number, number]): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }
}

/** The prompt text the mock makes of chat messages: a line `role: text` each (src/mock/openai-request.ts). */
export function mockChatPrompt(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `${m.role}: ${m.content}`).join('\n');
}

/** Tokens the mock computes for a chat prompt: its lines, then the generation prompt `assistant:` (two tokens). */
export function chatPromptTokens(messages: readonly ChatMessage[]): number {
  return countTokens(mockChatPrompt(messages)) + 2;
}

/** A workload's request stream from `seed`. */
export function makeWorkload(name: WorkloadName, seed: number, shape: WorkloadShape = DEFAULT_SHAPE, answers?: MockAnswers): Workload {
  const rand = mulberry32(seed ^ 0x2545f491);
  const src = new TextSource(rand);
  const req = (messages: ChatMessage[], key: string, group: number): WorkRequest => ({ messages, key, group, promptTokens: chatPromptTokens(messages) });
  const answer = (messages: ChatMessage[]): string =>
    answers ? generate({ ...answers, prompt: mockChatPrompt(messages) }).tokens.join('') : src.text(shape.chatAnswerTokens);
  switch (name) {
    case 'chat': {
      const systems = Array.from({ length: shape.chatSystems }, () => src.text(shape.chatSystemTokens));
      interface Session { id: number; system: number; turnsLeft: number; history: ChatMessage[] }
      let sessionSeq = 0;
      const open = (): Session => {
        const system = Math.floor(rand() * systems.length);
        return { id: sessionSeq++, system, turnsLeft: src.int(shape.chatTurns), history: [{ role: 'system', content: systems[system]! }] };
      };
      const sessions = Array.from({ length: shape.chatSessions }, open);
      return {
        name,
        describe: `multi-turn chat: ${shape.chatSessions} sessions open at once over ${shape.chatSystems} system prompts of ${shape.chatSystemTokens} tokens, ${shape.chatTurns.join('-')} turns of ${shape.chatUserTokens.join('-')}-token questions, ${answers ? 'the mocks\' own answers' : `${shape.chatAnswerTokens}-token answers`} quoted in the history`,
        next() {
          const slot = Math.floor(rand() * sessions.length);
          const s = sessions[slot]!;
          s.history.push({ role: 'user', content: src.text(src.int(shape.chatUserTokens)) });
          const r = req([...s.history], `session-${s.id}`, s.system);
          // the answer the next turn quotes: computed here, so the stream does not depend on timing
          s.history.push({ role: 'assistant', content: answer(r.messages) });
          if (--s.turnsLeft === 0) sessions[slot] = open();
          return r;
        },
      };
    }
    case 'docs': {
      const docs = Array.from({ length: shape.docs }, () => src.text(shape.docTokens));
      return {
        name,
        describe: `questions over documents: ${shape.docs} documents of ${shape.docTokens} tokens, each request one of them (uniformly) and a ${shape.questionTokens.join('-')}-token question`,
        next() {
          const d = Math.floor(rand() * docs.length);
          return req([{ role: 'system', content: docs[d]! }, { role: 'user', content: src.text(src.int(shape.questionTokens)) }], `doc-${d}`, d);
        },
      };
    }
    case 'random': {
      let seq = 0;
      return {
        name,
        describe: `random prompts (the control): ${shape.randomTokens.join('-')} tokens, nothing shared`,
        next() {
          return req([{ role: 'user', content: src.text(src.int(shape.randomTokens)) }], `user-${seq++}`, -1);
        },
      };
    }
    case 'hot': {
      const prefixes = Array.from({ length: shape.hotPrefixes }, () => src.text(shape.hotPrefixTokens));
      return {
        name,
        describe: `hot-prefix skew: ${shape.hotPrefixes} prefixes of ${shape.hotPrefixTokens} tokens, one of them in ${Math.round(shape.hotShare * 100)}% of the requests, then a ${shape.questionTokens.join('-')}-token question`,
        next() {
          const p = rand() < shape.hotShare ? 0 : 1 + Math.floor(rand() * (prefixes.length - 1));
          return req([{ role: 'system', content: prefixes[p]! }, { role: 'user', content: src.text(src.int(shape.questionTokens)) }], `prefix-${p}`, p);
        },
      };
    }
  }
}

/**
 * Poisson arrival times (ms from 0) at `rate` per second over `durationMs`, from `seed`: the
 * same for every policy at the same rate.
 */
export function poissonArrivals(rate: number, durationMs: number, seed: number): number[] {
  const rand = mulberry32(seed ^ 0x9e3779b9);
  const out: number[] = [];
  let t = 0;
  for (;;) {
    t += (-Math.log(1 - rand()) / rate) * 1000;
    if (t >= durationMs) return out;
    out.push(t);
  }
}
