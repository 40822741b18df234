/**
 * The client API key file (`--api-keys FILE`, TOML or JSON by extension) and `INFINI_API_KEYS`:
 * parsed and checked strictly, every problem named by key and field. Nothing here touches the
 * network or the clock; the result is plain data the key set (api-keys.ts) is built from.
 */
import { hash } from 'node:crypto';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';

export const SCOPES = ['client', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** One key as the router uses it: the secret only as its SHA-256. */
export interface KeySpec {
  name: string;
  /** Lowercase hex SHA-256 of the key. */
  sha256: string;
  /** Model names or globs (`*`, `?`) the key may use; `["*"]` unless the file says otherwise. */
  models: string[];
  scope: Scope;
  /** Requests per minute. */
  rpm?: number;
  /** Tokens per minute (prompt and completion, from the answers' `usage`). */
  tpm?: number;
  /** Requests in flight at once. */
  maxParallelRequests?: number;
  /** For the per-model wait queue: higher goes first. */
  priority?: number;
}

/** Backends whose names match `pattern` get `Authorization: Bearer $env` from the router. */
export interface BackendKeyRule {
  pattern: string;
  env: string;
}

export interface KeyConfig {
  keys: KeySpec[];
  backendKeyEnv: BackendKeyRule[];
}

/** Every problem with a key file or INFINI_API_KEYS: the only error the parser throws. */
export class KeyFileError extends Error {
  readonly code = 'KEY_FILE_INVALID';
}

/** A key's SHA-256 in hex, as the file holds it and lookups compute it (one-shot: a fifth of createHash's cost). */
export function sha256Hex(key: string): string {
  return hash('sha256', key, 'hex');
}

/** Up to 1e12: counts a window can hold without losing precision. */
const LIMIT_MAX = 1e12;
const limit = (what: string) =>
  z
    .number({ error: `expected a positive integer (${what})` })
    .int({ error: `expected a positive integer (${what})` })
    .min(1, { error: `expected a positive integer (${what})` })
    .max(LIMIT_MAX, { error: `at most ${LIMIT_MAX}` });

/** Visible ASCII only: a key travels in a header, and a space or control character there is a mistake. */
const KEY_TEXT = /^[\x21-\x7e]+$/;
const HEX64 = /^[0-9a-fA-F]{64}$/;
/** An environment variable's name as shells accept it. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const keySchema = z.strictObject({
  name: z.string({ error: 'expected a non-empty string' }).min(1, { error: 'expected a non-empty string' }).max(200, { error: 'at most 200 characters' }),
  key: z
    .string({ error: 'expected a string' })
    .min(8, { error: 'too short (at least 8 characters)' })
    .max(1024, { error: 'at most 1024 characters' })
    .regex(KEY_TEXT, { error: 'only visible ASCII characters (no spaces)' })
    .optional(),
  key_sha256: z.string({ error: 'expected 64 hex digits' }).regex(HEX64, { error: 'expected 64 hex digits (the SHA-256 of the key)' }).optional(),
  models: z
    .array(z.string({ error: 'expected a model name or glob' }).min(1, { error: 'expected a model name or glob' }).max(500, { error: 'at most 500 characters' }), { error: 'expected an array of model names or globs' })
    .max(10_000, { error: 'at most 10000 entries' })
    .optional(),
  scope: z.enum(SCOPES, { error: `expected one of ${SCOPES.join(', ')}` }).optional(),
  rpm: limit('requests per minute').optional(),
  tpm: limit('tokens per minute').optional(),
  max_parallel_requests: limit('requests in flight').optional(),
  priority: z.number({ error: 'expected an integer' }).int({ error: 'expected an integer' }).min(-1e6, { error: 'at least -1000000' }).max(1e6, { error: 'at most 1000000' }).optional(),
});

const fileSchema = z.strictObject({
  keys: z.array(z.unknown(), { error: 'expected an array of keys ([[keys]] tables)' }).max(100_000, { error: 'at most 100000 keys' }).optional(),
  backend_key_env: z
    .record(
      z.string().min(1, { error: 'expected a backend name or glob' }).max(500),
      z.string({ error: 'expected the name of an environment variable' }).regex(ENV_NAME, { error: 'expected the name of an environment variable' }),
      { error: 'expected a table of backend name or glob = environment variable name' },
    )
    .optional(),
});

const show = (v: unknown) => (typeof v === 'string' ? `'${v.length > 60 ? `${v.slice(0, 60)}...` : v}'` : typeof v === 'object' ? (Array.isArray(v) ? 'an array' : v === null ? 'null' : 'a table') : String(v));

function firstIssue(err: z.ZodError, at: string, data: unknown): never {
  const issue = err.issues[0]!;
  const path = issue.path.map(String);
  let what = path.length ? path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') what = issue.keys.map((k) => (path.length ? `${path.join('.')}.${k}` : k)).join(', ');
  const message = issue.code === 'unrecognized_keys' ? `unknown field${issue.keys.length > 1 ? 's' : ''}` : issue.message;
  const value = path.reduce<unknown>((v, p) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[p] : undefined), data);
  // a key's own text is never repeated in an error (errors are logged)
  const secret = path[path.length - 1] === 'key';
  const got = issue.code === 'unrecognized_keys' || value === undefined || secret ? '' : `, got ${show(value)}`;
  throw new KeyFileError(`${at}: ${what}: ${message}${got}`);
}

/** Checks one key entry; `at` names it in errors (its name once known). */
function parseKey(raw: unknown, index: number, source: string): KeySpec {
  const rawName = typeof raw === 'object' && raw !== null && typeof (raw as { name?: unknown }).name === 'string' ? (raw as { name: string }).name : undefined;
  const at = `${source}: key ${rawName !== undefined ? `'${rawName.slice(0, 200)}' ` : ''}(keys[${index}])`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new KeyFileError(`${at}: expected a table with name and key or key_sha256, got ${show(raw)}`);
  const r = keySchema.safeParse(raw);
  if (!r.success) firstIssue(r.error, at, raw);
  const k = r.data;
  if (k.key === undefined && k.key_sha256 === undefined) throw new KeyFileError(`${at}: needs key_sha256 (the SHA-256 of the key, in hex) or key (the key itself)`);
  if (k.key !== undefined && k.key_sha256 !== undefined) throw new KeyFileError(`${at}: has both key and key_sha256: give one`);
  const spec: KeySpec = { name: k.name, sha256: k.key_sha256 !== undefined ? k.key_sha256.toLowerCase() : sha256Hex(k.key!), models: k.models ?? ['*'], scope: k.scope ?? 'client' };
  if (k.rpm !== undefined) spec.rpm = k.rpm;
  if (k.tpm !== undefined) spec.tpm = k.tpm;
  if (k.max_parallel_requests !== undefined) spec.maxParallelRequests = k.max_parallel_requests;
  if (k.priority !== undefined) spec.priority = k.priority;
  return spec;
}

/** Checks a whole document (a parsed file, or INFINI_API_KEYS's JSON). */
export function keyConfigOf(data: unknown, source: string): KeyConfig {
  if (Array.isArray(data)) data = { keys: data };
  if (typeof data !== 'object' || data === null) throw new KeyFileError(`${source}: expected a table with [[keys]], got ${show(data)}`);
  const r = fileSchema.safeParse(data);
  if (!r.success) firstIssue(r.error, source, data);
  const keys = (r.data.keys ?? []).map((k, i) => parseKey(k, i, source));
  const backendKeyEnv = Object.entries(r.data.backend_key_env ?? {}).map(([pattern, env]) => ({ pattern, env }));
  // names and keys unique within the document too
  return mergeKeyConfigs([{ config: { keys, backendKeyEnv }, source }]);
}

export type KeyFileFormat = 'toml' | 'json';

/** TOML or JSON by the file's extension (.json is JSON, anything else TOML). */
export function formatOf(path: string): KeyFileFormat {
  return path.toLowerCase().endsWith('.json') ? 'json' : 'toml';
}

/**
 * Where a syntax error is, without the parsers' excerpts of the text (which may hold a key):
 * smol-toml's first message line and its line and column; JSON.parse's position as line and column.
 */
function syntaxWhere(err: unknown, text: string): string {
  if (!(err instanceof Error)) return '';
  const e = err as Error & { line?: unknown; column?: unknown };
  if (typeof e.line === 'number' && typeof e.column === 'number') {
    const what = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
    return ` at line ${e.line}, column ${e.column}: ${what}`;
  }
  const pos = /position (\d+)/.exec(e.message);
  if (pos === null) return /Unexpected end/.test(e.message) ? ': it ends too early' : '';
  const before = text.slice(0, Number(pos[1]));
  const line = before.split('\n').length;
  return ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
}

/** Parses and checks a key file's text; throws KeyFileError, nothing else. */
export function parseKeyFile(text: string, format: KeyFileFormat, source: string): KeyConfig {
  let data: unknown;
  try {
    data = format === 'json' ? JSON.parse(text) : parseToml(text);
  } catch (err) {
    throw new KeyFileError(`${source}: not valid ${format === 'json' ? 'JSON' : 'TOML'}${syntaxWhere(err, text)}`);
  }
  return keyConfigOf(data, source);
}

/**
 * INFINI_API_KEYS: JSON (the file's shape, or an array of keys) when it starts with `{` or `[`,
 * else a comma-separated list of keys, each with client scope, every model and no limits, named
 * `env-1`, `env-2`, ... in order.
 */
export function parseKeyEnv(text: string, source = 'INFINI_API_KEYS'): KeyConfig {
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) return parseKeyFile(trimmed, 'json', source);
  const entries = trimmed.split(',').map((s) => s.trim());
  const keys = entries.map((key, i) => {
    if (key === '') throw new KeyFileError(`${source}: entry ${i + 1} is empty (expected comma-separated keys)`);
    return parseKey({ name: `env-${i + 1}`, key }, i, source);
  });
  return mergeKeyConfigs([{ config: { keys, backendKeyEnv: [] }, source }]);
}

/** Several sources as one: names and keys must be unique across all of them. */
export function mergeKeyConfigs(configs: ReadonlyArray<{ config: KeyConfig; source: string }>): KeyConfig {
  const byName = new Map<string, string>();
  const byHash = new Map<string, string>();
  const out: KeyConfig = { keys: [], backendKeyEnv: [] };
  for (const { config, source } of configs) {
    for (const k of config.keys) {
      const other = byName.get(k.name);
      if (other !== undefined) throw new KeyFileError(`${source}: key '${k.name}': the name is used twice${other === source ? '' : ` (also in ${other})`}`);
      byName.set(k.name, source);
      const same = byHash.get(k.sha256);
      if (same !== undefined) throw new KeyFileError(`${source}: key '${k.name}': the same key as '${same}' (each key must be distinct)`);
      byHash.set(k.sha256, k.name);
      out.keys.push(k);
    }
    out.backendKeyEnv.push(...config.backendKeyEnv);
  }
  return out;
}
