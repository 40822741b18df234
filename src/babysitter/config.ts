import { UsageError, numberOption, type OptionValues } from '../common/command.js';
import { readConfigObject } from '../common/config-file.js';
import { splitShellWords } from '../common/shell-words.js';

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

const TYPE_ALIASES: Record<string, BackendType> = { 'llamacpp': 'llama.cpp', 'llama-cpp': 'llama.cpp', 'infinilm_rust': 'infinilm-rust' };

export interface BackendConfig {
  type: BackendType;
  /** Program plus leading arguments for `command` (and the program for llama.cpp). */
  command?: string;
  /** Extra arguments, passed as they are. */
  args: string[];
  workDir?: string;
  env: Record<string, string>;
  /** Model path/id for vllm, sglang, llama.cpp. */
  model?: string;
  /** InfiniLM: model path and launch script. */
  modelPath?: string;
  launchScript?: string;
  /** InfiniLM-Rust: service config file. */
  configFile?: string;
  /** Model ids: served by `mock`; declared for backends without a models endpoint. */
  models?: string[];
}

export interface BabysitterConfig {
  name: string;
  /** Address advertised to the registry. */
  host: string;
  /** Address the babysitter's own HTTP server binds (and presets tell the backend to bind). */
  bind: string;
  port: number;
  registryUrl?: string;
  registryToken?: string;
  maxRestarts: number;
  restartDelayMs: number;
  maxRestartDelayMs: number;
  heartbeatIntervalMs: number;
  startupTimeoutMs: number;
  livenessIntervalMs: number;
  livenessTimeoutMs: number;
  livenessFailures: number;
  /** While ready: period and timeout of the readiness probe (a failure = not routable). */
  readinessIntervalMs: number;
  readinessTimeoutMs: number;
  stopGraceMs: number;
  backend: BackendConfig;
  metadata: Record<string, unknown>;
  /** Keys of the config file that were ignored (reported as a warning). */
  unknownKeys: string[];
  configFile?: string;
}

const TOP_KEYS = new Set(['name', 'host', 'bind', 'port', 'registry_url', 'registry_token', 'router_url', 'babysitter', 'backend', 'metadata']);
const SITTER_KEYS: Record<string, string> = {
  max_restarts: 'max-restarts',
  restart_delay: 'restart-delay',
  max_restart_delay: 'max-restart-delay',
  heartbeat_interval: 'heartbeat-interval',
  startup_timeout: 'startup-timeout',
  liveness_interval: 'liveness-interval',
  liveness_timeout: 'liveness-timeout',
  liveness_failures: 'liveness-failures',
  readiness_interval: 'readiness-interval',
  readiness_timeout: 'readiness-timeout',
  stop_grace: 'stop-grace',
};
const BACKEND_KEYS = new Set(['type', 'command', 'args', 'work_dir', 'env', 'model', 'model_path', 'launch_script', 'config_file', 'models']);

export function parseBackendType(raw: string, where: string): BackendType {
  const t = raw.toLowerCase();
  const type = (t in BACKEND_TYPES ? t : TYPE_ALIASES[t]) as BackendType | undefined;
  if (!type) throw new UsageError(`${where}: unknown backend type '${raw}' (expected one of ${Object.keys(BACKEND_TYPES).join(', ')})`);
  return type;
}

/**
 * `--env` values: repeatable `K=V`, and also the original's single space-separated
 * `"K=V K2=V2"` (recognised when every space-separated word is itself `K=V`).
 */
export function parseEnvFlags(values: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  const assign = (pair: string) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env: expected KEY=VALUE, got '${pair}'`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  };
  for (const v of values) {
    const words = v.trim().split(/\s+/);
    if (words.length > 1 && words.every((w) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(w))) words.forEach(assign);
    else assign(v.trim());
  }
  return env;
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Typed readers for config-file values; each error names the file and the key. */
class FileReader {
  constructor(private readonly file: string) {}

  fail(key: string, problem: string): never {
    throw new UsageError(`config ${this.file}: key '${key}': ${problem}`);
  }

  str(t: Table, key: string, path: string): string | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(path, `expected a string, got ${JSON.stringify(v)}`);
    return v;
  }

  num(t: Table, key: string, path: string, opts: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    const { integer = false, min = 0, max = Number.MAX_SAFE_INTEGER } = opts;
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      this.fail(path, `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  strings(t: Table, key: string, path: string): string[] | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) this.fail(path, 'expected an array of strings');
    return v as string[];
  }

  stringTable(t: Table, key: string, path: string): Record<string, string> | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (!isTable(v)) this.fail(path, 'expected a table of strings');
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === 'string') out[k] = x;
      else if (typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
      else this.fail(`${path}.${k}`, 'expected a string');
    }
    return out;
  }
}

/** TOML values to JSON for registry metadata: dates become strings, non-finite numbers are dropped. */
function toJson(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'number' && !Number.isFinite(v)) return undefined;
  if (Array.isArray(v)) return v.map(toJson).filter((x) => x !== undefined);
  if (isTable(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const j = toJson(x);
      if (j !== undefined) out[k] = j;
    }
    return out;
  }
  if (typeof v === 'object' && v !== null) return String(v);
  return v;
}

/**
 * Builds the configuration with one precedence everywhere: a flag given on the command line (or
 * by its environment variable) > the config file > the default.
 */
export function resolveConfig(values: OptionValues, given: ReadonlySet<string>): BabysitterConfig {
  const file = values['config-file'] as string | undefined;
  const data: Table = file ? readConfigObject(file) : {};
  const r = new FileReader(file ?? '');
  const unknownKeys: string[] = [];
  for (const k of Object.keys(data)) if (!TOP_KEYS.has(k)) unknownKeys.push(k);
  const sitter = data.babysitter === undefined ? {} : isTable(data.babysitter) ? data.babysitter : r.fail('babysitter', 'expected a table');
  for (const k of Object.keys(sitter)) if (!(k in SITTER_KEYS)) unknownKeys.push(`babysitter.${k}`);
  const backendTable = data.backend === undefined ? undefined : isTable(data.backend) ? data.backend : r.fail('backend', 'expected a table');
  if (backendTable) for (const k of Object.keys(backendTable)) if (!BACKEND_KEYS.has(k)) unknownKeys.push(`backend.${k}`);
  const metadata = data.metadata === undefined ? {} : isTable(data.metadata) ? (toJson(data.metadata) as Record<string, unknown>) : r.fail('metadata', 'expected a table');

  const flag = (key: string): string | undefined => (given.has(key) ? (values[key] as string) : undefined);
  // port
  let port: number;
  if (given.has('port')) port = numberOption(values, 'port', { integer: true, min: 1, max: 65534 });
  else if (file) {
    if (data.port === undefined) r.fail('port', 'required');
    port = r.num(data, 'port', 'port', { integer: true, min: 1, max: 65534 })!;
  } else throw new UsageError('--port is required when --config-file is not provided');

  // backend
  let type: BackendType = 'command';
  if (given.has('service-type')) type = parseBackendType(String(values['service-type']), '--service-type');
  else if (backendTable?.type !== undefined) type = parseBackendType(r.str(backendTable, 'type', 'backend.type')!, `config ${file}: key 'backend.type'`);
  else if (file && backendTable === undefined) r.fail('backend', 'required table is missing');
  if (given.has('command')) type = 'command';
  const b = backendTable ?? {};
  const cliArgs = flag('args');
  let args: string[] = r.strings(b, 'args', 'backend.args') ?? [];
  let models = r.strings(b, 'models', 'backend.models');
  if (cliArgs !== undefined) {
    let words: string[];
    try {
      words = splitShellWords(cliArgs);
    } catch (err) {
      throw new UsageError(`--args: ${(err as Error).message}`);
    }
    // Compatible: for the mock, --args is the comma-separated model list.
    if (type === 'mock' && words.length === 1 && !words[0]!.startsWith('-')) models = words[0]!.split(',').map((m) => m.trim()).filter(Boolean);
    else args = words;
  }
  if (given.has('models')) models = String(values.models).split(',').map((m) => m.trim()).filter(Boolean);
  const env = { ...(r.stringTable(b, 'env', 'backend.env') ?? {}), ...parseEnvFlags((values.env as string[] | undefined) ?? []) };
  const path = flag('path');
  const backend: BackendConfig = {
    type,
    command: flag('command') ?? r.str(b, 'command', 'backend.command'),
    args,
    workDir: flag('work-dir') ?? r.str(b, 'work_dir', 'backend.work_dir'),
    env,
    model: path ?? r.str(b, 'model', 'backend.model'),
    modelPath: path ?? r.str(b, 'model_path', 'backend.model_path'),
    launchScript: flag('launch-script') ?? r.str(b, 'launch_script', 'backend.launch_script'),
    configFile: path ?? r.str(b, 'config_file', 'backend.config_file'),
    models,
  };
  const where = (key: string, flagName: string) => (file && !given.has(flagName) ? `config ${file}: key '${key}'` : `--${flagName}`);
  if (type === 'command' && !backend.command) throw new UsageError(`${where('backend.command', 'command')}: required for backend type 'command'`);
  if ((type === 'vllm' || type === 'sglang' || type === 'llama.cpp') && !backend.model) throw new UsageError(`${where('backend.model', 'path')}: a model is required for backend type '${type}'`);
  if (type === 'infinilm' && !backend.modelPath) throw new UsageError(`${where('backend.model_path', 'path')}: required for backend type 'infinilm'`);
  if (type === 'infinilm-rust' && !backend.configFile) throw new UsageError(`${where('backend.config_file', 'path')}: required for backend type 'infinilm-rust'`);
  if (type === 'mock' && (!backend.models || backend.models.length === 0)) throw new UsageError(`${where('backend.models', 'args')}: a model list is required for backend type 'mock'`);

  // seconds and counts: flag > file [babysitter] > default
  const sitterNumber = (fileKey: string, opts: { integer?: boolean; min?: number; max?: number }, fallback: number): number => {
    const flagName = SITTER_KEYS[fileKey]!;
    if (given.has(flagName)) return numberOption(values, flagName, opts);
    return r.num(sitter, fileKey, `babysitter.${fileKey}`, opts) ?? fallback;
  };
  const secs = { min: 0.01, max: 86_400 * 365 };
  const host = flag('host') ?? r.str(data, 'host', 'host') ?? 'localhost';
  const name = flag('name') ?? r.str(data, 'name', 'name') ?? `${BACKEND_TYPES[type].toLowerCase().replace(/\s+/g, '-')}-${port}`;
  if (!/^[A-Za-z0-9._:-]{1,245}$/.test(name)) throw new UsageError(`${where('name', 'name')}: '${name}' must be 1-245 characters of A-Z a-z 0-9 . _ : -`);
  return {
    name,
    host,
    bind: flag('bind') ?? r.str(data, 'bind', 'bind') ?? '0.0.0.0',
    port,
    registryUrl: (flag('registry-url') ?? r.str(data, 'registry_url', 'registry_url'))?.replace(/\/+$/, '') || undefined,
    registryToken: flag('registry-token') ?? r.str(data, 'registry_token', 'registry_token'),
    maxRestarts: sitterNumber('max_restarts', { integer: true, min: 0 }, 10_000),
    restartDelayMs: sitterNumber('restart_delay', { min: 0, max: 86_400 }, 5) * 1000,
    maxRestartDelayMs: sitterNumber('max_restart_delay', { min: 0, max: 86_400 }, 300) * 1000,
    heartbeatIntervalMs: sitterNumber('heartbeat_interval', secs, 30) * 1000,
    startupTimeoutMs: sitterNumber('startup_timeout', secs, 1200) * 1000,
    livenessIntervalMs: sitterNumber('liveness_interval', secs, 30) * 1000,
    livenessTimeoutMs: sitterNumber('liveness_timeout', secs, 10) * 1000,
    livenessFailures: sitterNumber('liveness_failures', { integer: true, min: 1, max: 1000 }, 3),
    readinessIntervalMs: sitterNumber('readiness_interval', secs, 5) * 1000,
    readinessTimeoutMs: sitterNumber('readiness_timeout', secs, 5) * 1000,
    stopGraceMs: sitterNumber('stop_grace', { min: 0, max: 86_400 }, 30) * 1000,
    backend,
    metadata,
    unknownKeys,
    configFile: file,
  };
}
