import { UsageError } from '../common/command.js';

/** Backend kinds; the value is the compatible service-type name used in registry metadata. */
export const BACKEND_TYPES = {
  command: 'command',
  vllm: 'vLLM',
  mock: 'mock',
  infinilm: 'InfiniLM',
  'infinilm-rust': 'InfiniLM-Rust',
  sglang: 'SGLang',
  'llama.cpp': 'llama.cpp',
} as const;

export type BackendType = keyof typeof BACKEND_TYPES;

const TYPE_ALIASES: Record<string, BackendType> = { llamacpp: 'llama.cpp', 'llama-cpp': 'llama.cpp', infinilm_rust: 'infinilm-rust' };

export function parseBackendType(raw: string, where: string): BackendType {
  const t = raw.toLowerCase();
  const type = (t in BACKEND_TYPES ? t : TYPE_ALIASES[t]) as BackendType | undefined;
  if (!type) throw new UsageError(`${where}: unknown backend type '${raw}' (expected one of ${Object.keys(BACKEND_TYPES).join(', ')})`);
  return type;
}
