/**
 * Settings: one declaration per service (`src/<service>/spec.ts`) of everything it can be told,
 * from which parsing, defaults, validation, `--help`, the README's reference, config files and
 * `infini-svc config` all derive. Precedence is the same everywhere: a flag > its environment
 * variable > the config file > the default. No default is written anywhere but in the spec.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { UsageError } from './command.js';
import { LOG_LEVELS } from './log.js';
import { nearest } from './nearest.js';
import { splitShellWords } from './shell-words.js';
import { VERSION } from './version.js';

export type SettingType = 'string' | 'number' | 'integer' | 'port' | 'bytes' | 'boolean' | 'list' | 'words' | 'map' | 'table';

/** One setting: its flag, environment variable(s), config-file key(s), type, bounds, default and help. */
export interface Setting {
  /** The flag (`--heartbeat-timeout`), and the key in a service's own config file (`-` or `_`). */
  key: string;
  type: SettingType;
  help: string;
  /** The default, typed as the setting is (seconds as a number, sizes in bytes). */
  default?: string | number | boolean;
  /** How the default reads where it is computed (`mock-<port>`); shown in help and docs. */
  defaultText?: string;
  env?: string | readonly string[];
  /** Other dotted paths of a config file that set it: the original's keys (`babysitter.heartbeat_interval`). */
  fileKeys?: readonly string[];
  /** Only in a config file (a table such as `[metadata]`): no flag. */
  fileOnly?: boolean;
  min?: number;
  max?: number;
  choices?: readonly string[];
  metavar?: string;
  short?: string;
  /** The flag may be given more than once (map: `--env K=V`). */
  multiple?: boolean;
  /** The flag's value may begin with dashes (`--args "--model /m"`). */
  dashValue?: boolean;
  /** Never printed (`config print` shows `<redacted>`). */
  secret?: boolean;
  /** Accepted for compatibility, has no effect (shown as such). */
  unused?: boolean;
}

export interface ServiceSpec {
  /** As typed by the user: `infini-svc registry`, `infini-registry`. */
  name: string;
  /** The service's name in cluster files and `config` commands: registry, router, babysitter, mock, up. */
  service: string;
  summary: string;
  settings: readonly Setting[];
  epilog?: string;
  /** The flag naming the service's own config file; `config` unless the original used another; null: none. */
  configFlag?: string | null;
}

export type Source = 'flag' | 'environment' | 'file' | 'default';
export type SettingValueOf = string | number | boolean | string[] | Record<string, string> | Record<string, unknown>;

/** Options every command takes; not settings of a service. */
const COMMON: readonly Setting[] = [
  { key: 'log-level', type: 'string', default: 'info', env: 'LOG_LEVEL', metavar: 'LEVEL', choices: LOG_LEVELS, help: 'log level' },
];
const HELP_FLAGS = { help: { type: 'boolean' as const, short: 'h' }, version: { type: 'boolean' as const, short: 'V' } };

export function configFlagOf(spec: ServiceSpec): string | undefined {
  return spec.configFlag === null ? undefined : (spec.configFlag ?? 'config');
}

/** Every setting of a spec plus the common ones (log level). */
export function allSettings(spec: ServiceSpec): readonly Setting[] {
  return [...spec.settings, ...COMMON];
}

const envNames = (s: Setting): string[] => (s.env === undefined ? [] : typeof s.env === 'string' ? [s.env] : [...s.env]);

// ---------------------------------------------------------------------------------------------
// values

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i;

/** `32MiB`, `512KiB`, `1048576`, `1MB` (binary multiples) to bytes. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text);
  if (!m) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit.startsWith('g') ? 1024 ** 3 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('k') ? 1024 : 1;
  return Math.floor(Number(m[1]) * mult);
}

/** A size in bytes as people write it: `32MiB` rather than `33554432`. */
export function formatSize(n: number): string {
  for (const [unit, mult] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) if (n >= mult && n % mult === 0) return `${n / mult}${unit}`;
  return String(n);
}

function rangeText(s: Setting, what: string): string {
  if (s.min !== undefined && s.max !== undefined) return `${what} from ${s.min} to ${s.max}`;
  if (s.min !== undefined) return `${what} of at least ${s.min}`;
  if (s.max !== undefined) return `${what} of at most ${s.max}`;
  return what;
}

/** What a setting expects, for error messages: "a number from 0.01 to 86400". */
export function expected(s: Setting): string {
  switch (s.type) {
    case 'string':
      return s.choices ? `one of ${s.choices.join(', ')}` : 'a string';
    case 'number':
      return rangeText(s, 'a number');
    case 'integer':
      return rangeText(s, 'an integer');
    case 'port':
      return `a port from ${s.min ?? 0} to ${s.max ?? 65535}`;
    case 'bytes':
      return rangeText(s, 'a size such as 1048576, 512KiB or 32MiB');
    case 'boolean':
      return 'true or false';
    case 'list':
      return 'a comma-separated list (or an array of strings)';
    case 'words':
      return 'arguments (an array of strings; on the command line a string split like a shell)';
    case 'map':
      return 'KEY=VALUE pairs (or a table of strings)';
    case 'table':
      return 'a table';
  }
}

const show = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));

/**
 * Parses one value for a setting, from a flag or environment string or a config-file value.
 * `where` names the place in errors (`--port`, `environment LOG_LEVEL`, `config file f: key 'port'`).
 */
export function parseValue(s: Setting, raw: unknown, where: string, fromFile = false): SettingValueOf {
  const bad = (): never => {
    throw new UsageError(`${where}: expected ${expected(s)}, got ${show(raw)}`);
  };
  const inRange = (n: number) => Number.isFinite(n) && (s.min === undefined || n >= s.min) && (s.max === undefined || n <= s.max);
  switch (s.type) {
    case 'string': {
      if (typeof raw !== 'string' && typeof raw !== 'number') return bad();
      const v = String(raw);
      if (s.choices && !s.choices.includes(v)) return bad();
      return v;
    }
    case 'number':
    case 'integer':
    case 'port': {
      // a file has types of its own: "8100" (a string) where a number belongs is a mistake there
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' && !fromFile ? Number(raw.trim()) : NaN;
      if (!inRange(n)) return bad();
      if (s.type !== 'number' && !Number.isInteger(n)) return bad();
      if (s.type === 'port' && (n < (s.min ?? 0) || n > (s.max ?? 65535))) return bad();
      return n;
    }
    case 'bytes': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? (parseSize(raw) ?? NaN) : NaN;
      if (!Number.isInteger(n) || !inRange(n)) return bad();
      return n;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (fromFile) return bad();
      if (typeof raw === 'string' && /^(1|true|yes|on)$/i.test(raw.trim())) return true;
      if (typeof raw === 'string' && /^(0|false|no|off)$/i.test(raw.trim())) return false;
      return bad();
    case 'list': {
      const items = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) && raw.every((x) => typeof x === 'string') ? (raw as string[]) : bad();
      return items.map((x) => x.trim()).filter(Boolean);
    }
    case 'words': {
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return [...(raw as string[])];
      if (typeof raw !== 'string' || fromFile) return bad();
      try {
        return splitShellWords(raw);
      } catch (err) {
        throw new UsageError(`${where}: ${(err as Error).message}`);
      }
    }
    case 'map': {
      const out: Record<string, string> = {};
      if (isTable(raw)) {
        for (const [k, v] of Object.entries(raw)) {
          if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
          else throw new UsageError(`${where}.${k}: expected a string, got ${show(v)}`);
        }
        return out;
      }
      const items = typeof raw === 'string' ? [raw] : Array.isArray(raw) && raw.every((x) => typeof x === 'string') ? (raw as string[]) : bad();
      // KEY=VALUE, repeatable; also the original's one "K=V K2=V2" string
      const assign = (pair: string) => {
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new UsageError(`${where}: expected KEY=VALUE, got '${pair}'`);
        out[pair.slice(0, eq)] = pair.slice(eq + 1);
      };
      for (const item of items) {
        const words = item.trim().split(/\s+/);
        if (words.length > 1 && words.every((w) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(w))) words.forEach(assign);
        else assign(item.trim());
      }
      return out;
    }
    case 'table':
      if (!isTable(raw)) return bad();
      return toJson(raw) as Record<string, unknown>;
  }
}

/** A typed default as a flag would spell it, for help and docs. */
export function defaultText(s: Setting): string | undefined {
  if (s.defaultText !== undefined) return s.defaultText;
  if (s.default === undefined || s.default === false) return undefined;
  if (s.type === 'bytes' && typeof s.default === 'number') return formatSize(s.default);
  return String(s.default);
}

// ---------------------------------------------------------------------------------------------
// config files

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** TOML values as JSON: dates become strings, non-finite numbers are dropped. */
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

/** Parses a TOML or JSON document (JSON by a `.json` name); syntax errors keep their line and column. */
export function parseConfigText(text: string, path: string): Record<string, unknown> {
  let data: unknown;
  if (path.endsWith('.json')) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`config file ${path}: invalid JSON: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    try {
      data = parseToml(text);
    } catch (err) {
      const e = err as Error & { line?: number; column?: number };
      const at = e.line !== undefined ? ` at line ${e.line}, column ${e.column}` : '';
      throw new UsageError(`config file ${path}: invalid TOML${at}: ${e.message.split('\n')[0].replace(/^Invalid TOML document: /, '')}`);
    }
  }
  if (!isTable(data)) throw new UsageError(`config file ${path}: expected a table (an object) at the top level`);
  return data;
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`config file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  return parseConfigText(text, path);
}

/** A dotted path with every `-` read as `_`: files may spell keys either way. */
const norm = (path: string) => path.replace(/-/g, '_').toLowerCase();

/** Where each setting may appear in a config file: its key, and the original's keys. */
function filePaths(spec: ServiceSpec): Map<string, Setting> {
  const map = new Map<string, Setting>();
  for (const s of spec.settings) {
    if (!s.fileOnly) map.set(norm(s.key), s);
    for (const k of s.fileKeys ?? []) map.set(norm(k), s);
  }
  for (const s of COMMON) map.set(norm(s.key), s);
  return map;
}

/** The key paths a config file of this spec may hold, as the user would write them (for hints). */
export function knownFileKeys(spec: ServiceSpec): string[] {
  const keys: string[] = [];
  for (const s of allSettings(spec)) {
    if (!s.fileOnly) keys.push(s.key);
    keys.push(...(s.fileKeys ?? []));
  }
  return keys;
}

/**
 * Reads a config file's values for a spec: every key must be one of its settings (anywhere in the
 * file; a known key in the wrong section gets the right one as a hint), every value its type.
 * Returns the values found by setting key. `label` names the file in errors.
 */
export function fileValues(
  spec: ServiceSpec,
  data: Record<string, unknown>,
  label: string,
  /** Where `data` sits in its file (`router` for a cluster file's [router]), for the keys named in errors. */
  at = '',
  /** Keys of the file's other sections, so a key in the wrong one is pointed to the right one. */
  elsewhere: readonly string[] = [],
): Map<string, { value: SettingValueOf; path: string }> {
  const paths = filePaths(spec);
  const found = new Map<string, { value: SettingValueOf; path: string }>();
  const full = (path: string) => (at ? `${at}.${path}` : path);
  const visit = (table: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(table)) {
      const path = prefix ? `${prefix}.${k}` : k;
      const s = paths.get(norm(path));
      if (s === undefined) {
        // a section of known keys: look inside it (a whole table can also be one setting: [metadata])
        if (isTable(v) && [...paths.keys()].some((p) => p.startsWith(`${norm(path)}.`))) {
          visit(v, path);
          continue;
        }
        const hint = nearest(full(path), [...knownFileKeys(spec).map(full), ...elsewhere]);
        throw new UsageError(`${label}: unknown key '${full(path)}'${hint ? ` (did you mean '${hint}'?)` : ''}`);
      }
      if (s.key === configFlagOf(spec)) throw new UsageError(`${label}: key '${full(path)}': a config file cannot name another config file`);
      const prior = found.get(s.key);
      if (prior) throw new UsageError(`${label}: keys '${full(prior.path)}' and '${full(path)}' set the same setting`);
      found.set(s.key, { value: parseValue(s, v, `${label}: key '${full(path)}'`, true), path });
    }
  };
  visit(data, '');
  return found;
}

/** A typed value as a flag's text again (to start a service with it). */
export function flagText(s: Setting, v: SettingValueOf): string | boolean {
  if (typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.join(',');
  if (typeof v === 'object') throw new Error(`setting ${s.key} has no flag form`);
  return String(v);
}

// ---------------------------------------------------------------------------------------------
// resolution

/** The settings a command runs with, each with where its value came from. */
export class Settings {
  constructor(
    readonly spec: ServiceSpec,
    private readonly values: ReadonlyMap<string, SettingValueOf>,
    private readonly sources: ReadonlyMap<string, Source>,
    /** The config file read, if any. */
    readonly file: string | undefined,
    /** The key each file value was found under (`babysitter.heartbeat_interval`). */
    private readonly fileKeyOf: ReadonlyMap<string, string> = new Map(),
    /** How errors name the file (`cluster file c.toml: babysitter 'a'` for a section of a cluster file). */
    private readonly fileLabel = file === undefined ? undefined : `config file ${file}`,
  ) {}

  private get(key: string): SettingValueOf | undefined {
    if (!allSettings(this.spec).some((s) => s.key === key)) throw new Error(`no setting '${key}' in ${this.spec.service}'s spec`);
    return this.values.get(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Set by a flag, the environment or the file (not by its default). */
  given(key: string): boolean {
    const src = this.sources.get(key);
    return src !== undefined && src !== 'default';
  }

  source(key: string): Source | undefined {
    return this.sources.get(key);
  }

  /**
   * Where a value came from, or where it belongs, for error messages about it: `--port`,
   * `environment X`, `config file f: key 'backend.command'` (the original's key when a file is used).
   */
  where(key: string): string {
    const src = this.sources.get(key);
    const s = allSettings(this.spec).find((x) => x.key === key)!;
    if (src === 'environment') return `environment ${envNames(s).find((n) => process.env[n]) ?? envNames(s)[0]}`;
    if (src === 'file' || (src !== 'flag' && this.file !== undefined)) return `${this.fileLabel}: key '${this.fileKeyOf.get(key) ?? s.fileKeys?.[0] ?? key}'`;
    return `--${key}`;
  }

  str(key: string): string {
    return this.required(key) as string;
  }

  optStr(key: string): string | undefined {
    return this.get(key) as string | undefined;
  }

  num(key: string): number {
    return this.required(key) as number;
  }

  optNum(key: string): number | undefined {
    return this.get(key) as number | undefined;
  }

  bool(key: string): boolean {
    return this.get(key) === true;
  }

  list(key: string): string[] | undefined {
    return this.get(key) as string[] | undefined;
  }

  map(key: string): Record<string, string> {
    return (this.get(key) as Record<string, string> | undefined) ?? {};
  }

  table(key: string): Record<string, unknown> {
    return (this.get(key) as Record<string, unknown> | undefined) ?? {};
  }

  private required(key: string): SettingValueOf {
    const v = this.get(key);
    if (v === undefined) throw new UsageError(`--${key} is required`);
    return v;
  }

  /** Every setting with its value and source, secrets redacted (for `config print`). */
  entries(): Array<{ key: string; value: SettingValueOf | undefined; source: Source | undefined; secret: boolean }> {
    return allSettings(this.spec).map((s) => {
      const value = this.values.get(s.key);
      return { key: s.key, value: s.secret && value !== undefined ? '<redacted>' : value, source: this.sources.get(s.key), secret: s.secret === true };
    });
  }
}

/** Splits argv for parseArgs, joining the values of flags that may begin with dashes. */
function joinDashValues(spec: ServiceSpec, argv: readonly string[]): string[] {
  const dash = new Set(spec.settings.filter((s) => s.dashValue).map((s) => s.key));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--') && dash.has(a.slice(2)) && i + 1 < argv.length) out.push(`${a}=${argv[++i]}`);
    else out.push(a);
  }
  return out;
}

/** The raw flags given on the command line (before typing), by setting key. */
function parseFlags(spec: ServiceSpec, argv: readonly string[]): { flags: Map<string, unknown>; config?: string; help: boolean; version: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { ...HELP_FLAGS };
  for (const s of allSettings(spec)) {
    if (s.fileOnly) continue;
    options[s.key] = { type: s.type === 'boolean' ? 'boolean' : 'string', ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}) };
  }
  const cfg = configFlagOf(spec);
  if (cfg !== undefined && !options[cfg]) options[cfg] = { type: 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: joinDashValues(spec, argv), options, allowPositionals: false, strict: true, allowNegative: false } as Parameters<typeof parseArgs>[0]);
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify.*$/s, '');
    const unknown = /Unknown option '--([^']+)'/.exec(message)?.[1];
    const hint = unknown ? nearest(unknown, [...Object.keys(options)]) : undefined;
    throw new UsageError(`${message}${hint ? ` (did you mean --${hint}?)` : ''} (see --help)`);
  }
  const values = parsed.values as Record<string, unknown>;
  const flags = new Map<string, unknown>();
  for (const s of allSettings(spec)) if (values[s.key] !== undefined) flags.set(s.key, values[s.key]);
  return { flags, config: cfg === undefined ? undefined : (values[cfg] as string | undefined), help: values.help === true, version: values.version === true };
}

/**
 * Resolves a command's settings from its flags, the environment, its config file (`--config`, or
 * `fileData` already read) and the defaults. `--help` and `--version` print and exit.
 */
export function resolveSettings(spec: ServiceSpec, argv: readonly string[], env: NodeJS.ProcessEnv = process.env, fileData?: { data: Record<string, unknown>; label: string; path?: string }): Settings {
  const { flags, config, help, version } = parseFlags(spec, argv);
  if (help) {
    process.stdout.write(helpText(spec));
    process.exit(0);
  }
  if (version) {
    process.stdout.write(`${spec.name} ${VERSION}\n`);
    process.exit(0);
  }
  let file = fileData;
  if (config !== undefined) file = { data: readConfigFile(config), label: `config file ${config}`, path: config };
  const fromFile = file ? fileValues(spec, file.data, file.label) : new Map<string, { value: SettingValueOf; path: string }>();
  const values = new Map<string, SettingValueOf>();
  const sources = new Map<string, Source>();
  for (const s of allSettings(spec)) {
    let value: SettingValueOf | undefined;
    let source: Source | undefined;
    if (flags.has(s.key)) {
      const raw = flags.get(s.key);
      value = parseValue(s, raw, `--${s.key}`);
      source = 'flag';
    } else {
      const name = envNames(s).find((n) => env[n] !== undefined && env[n] !== '');
      if (name !== undefined) {
        value = parseValue(s, env[name], `environment ${name}`);
        source = 'environment';
      } else if (fromFile.has(s.key)) {
        value = fromFile.get(s.key)!.value;
        source = 'file';
      } else if (s.default !== undefined) {
        value = s.default;
        source = 'default';
      }
    }
    // a map given both ways is merged: the file's pairs, then the flags' over them
    if (s.type === 'map' && source !== 'file' && fromFile.has(s.key) && value !== undefined) value = { ...(fromFile.get(s.key)!.value as Record<string, string>), ...(value as Record<string, string>) };
    if (value !== undefined) {
      values.set(s.key, value);
      sources.set(s.key, source!);
    }
  }
  const fileKeyOf = new Map([...fromFile].map(([k, v]) => [k, v.path]));
  return new Settings(spec, values, sources, file?.path ?? (file ? file.label : undefined), fileKeyOf, file?.label);
}

// ---------------------------------------------------------------------------------------------
// help

export function helpText(spec: ServiceSpec): string {
  const rows: Array<[string, string]> = [];
  const cfg = configFlagOf(spec);
  const flagOf = (s: Setting) => `${s.short ? `-${s.short}, ` : '    '}--${s.key}${s.type === 'boolean' ? '' : ` <${s.metavar ?? 'VALUE'}>`}`;
  for (const s of allSettings(spec)) {
    if (s.fileOnly) continue;
    const extras: string[] = [];
    const d = defaultText(s);
    if (d !== undefined) extras.push(`default: ${d}`);
    if (s.env) extras.push(`env: ${envNames(s).join(', ')}`);
    if (s.multiple) extras.push('repeatable');
    rows.push([flagOf(s), s.help + (extras.length ? ` (${extras.join('; ')})` : '')]);
  }
  if (cfg !== undefined) rows.push([`    --${cfg} <FILE>`, 'TOML or JSON file of these settings (flag names as keys); flags and environment win']);
  rows.push(['-h, --help', 'show this help and exit'], ['-V, --version', 'show the version and exit']);
  const width = Math.min(40, Math.max(...rows.map(([f]) => f.length)) + 2);
  const lines = rows.map(([f, h]) => `  ${f.padEnd(width)}${f.length >= width ? `\n  ${' '.repeat(width)}` : ''}${h}`);
  return `${spec.name} ${VERSION}\n${spec.summary}\n\nUsage: ${spec.name} [options]\n\nOptions:\n${lines.join('\n')}\n${spec.epilog ? `\n${spec.epilog}\n` : ''}`;
}
