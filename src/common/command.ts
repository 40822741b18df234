import { parseArgs } from 'node:util';
import { LOG_LEVELS } from './log.js';
import { startParentWatchFromEnv } from './parent-watch.js';
import { VERSION } from './version.js';

/** One command-line option. `env` names an environment variable used when the flag is absent. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  help: string;
  default?: string | boolean;
  short?: string;
  multiple?: boolean;
  metavar?: string;
  env?: string;
  /** The value may begin with dashes (`--args "--model /m"`): the next word is always the value. */
  dashValue?: boolean;
}

export interface CommandSpec {
  /** Name as typed by the user, e.g. `infini-svc registry` or `infini-registry`. */
  name: string;
  summary: string;
  options: Record<string, OptionSpec>;
  /** Extra help text printed after the options. */
  epilog?: string;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** A user error on the command line or in a config file: printed as one line, exit status 2. */
export class UsageError extends Error {}

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  'log-level': { type: 'string', env: 'LOG_LEVEL', default: 'info', metavar: 'LEVEL', help: `log level: ${LOG_LEVELS.join(', ')}` },
  help: { type: 'boolean', short: 'h', help: 'show this help and exit' },
  version: { type: 'boolean', short: 'V', help: 'show the version and exit' },
};

export function helpText(spec: CommandSpec): string {
  const all = { ...spec.options, ...COMMON_OPTIONS };
  const rows = Object.entries(all).map(([key, opt]) => {
    const flag = `${opt.short ? `-${opt.short}, ` : '    '}--${key}${opt.type === 'string' ? ` <${opt.metavar ?? 'VALUE'}>` : ''}`;
    const extras: string[] = [];
    if (opt.default !== undefined && opt.default !== false) extras.push(`default: ${String(opt.default)}`);
    if (opt.env) extras.push(`env: ${opt.env}`);
    if (opt.multiple) extras.push('repeatable');
    return [flag, opt.help + (extras.length ? ` (${extras.join('; ')})` : '')];
  });
  const width = Math.min(40, Math.max(...rows.map(([f]) => f.length)) + 2);
  const lines = rows.map(([f, h]) => `  ${f.padEnd(width)}${f.length >= width ? `\n  ${' '.repeat(width)}` : ''}${h}`);
  return `${spec.name} ${VERSION}\n${spec.summary}\n\nUsage: ${spec.name} [options]\n\nOptions:\n${lines.join('\n')}\n${spec.epilog ? `\n${spec.epilog}\n` : ''}`;
}

/**
 * Parses argv against the spec. Prints help/version and exits for -h/-V; throws UsageError for
 * unknown flags or bad values. Environment fallbacks and defaults are applied here so every command
 * reads its options the same way. Returns values plus the set of keys the user gave explicitly
 * (flag or environment), which config-file merging needs for "flag > file > default".
 */
export function parseCommand(spec: CommandSpec, argv: string[]): { values: OptionValues; given: Set<string> } {
  const all = { ...spec.options, ...COMMON_OPTIONS };
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [key, opt] of Object.entries(all)) {
    parseOptions[key] = { type: opt.type };
    if (opt.short) parseOptions[key].short = opt.short;
    if (opt.multiple) parseOptions[key].multiple = true;
  }
  // parseArgs refuses values that look like options; join those that may legitimately start with '-'.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const key = a.startsWith('--') ? a.slice(2) : undefined;
    if (key && all[key]?.dashValue && i + 1 < argv.length) {
      args.push(`${a}=${argv[++i]}`);
    } else args.push(a);
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options: parseOptions, allowPositionals: false, strict: true, allowNegative: false } as Parameters<typeof parseArgs>[0]);
  } catch (err) {
    throw new UsageError(`${(err as Error).message.replace(/\. To specify.*$/s, '')} (see --help)`);
  }
  const values = parsed.values as OptionValues;
  if (values.help) {
    process.stdout.write(helpText(spec));
    process.exit(0);
  }
  if (values.version) {
    process.stdout.write(`${spec.name} ${VERSION}\n`);
    process.exit(0);
  }
  const given = new Set<string>();
  for (const [key, opt] of Object.entries(all)) {
    if (values[key] !== undefined) {
      given.add(key);
      continue;
    }
    const fromEnv = opt.env ? process.env[opt.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== '') {
      values[key] = opt.type === 'boolean' ? /^(1|true|yes|on)$/i.test(fromEnv) : opt.multiple ? [fromEnv] : fromEnv;
      given.add(key);
    } else if (opt.default !== undefined) {
      values[key] = opt.default;
    }
  }
  const level = String(values['log-level']);
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level: unknown level '${level}' (expected one of ${LOG_LEVELS.join(', ')})`);
  return { values, given };
}

/** Reads a numeric option. Seconds may be fractional (short timeouts in tests); ports are integers. */
export function numberOption(values: OptionValues, key: string, opts: { integer?: boolean; min?: number; max?: number } = {}): number {
  const raw = values[key];
  const text = String(raw ?? '').trim();
  const n = Number(text);
  const { integer = false, min = 0, max = Number.MAX_SAFE_INTEGER } = opts;
  if (text === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new UsageError(`--${key}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got '${text}'`);
  }
  return n;
}

export function portOption(values: OptionValues, key: string): number {
  return numberOption(values, key, { integer: true, min: 0, max: 65535 });
}

/**
 * Runs a command's main function, turning UsageError into one line on stderr and exit status 2.
 * A process started by a supervisor that watches for its death (INFINI_PARENT_FD) stops with it.
 */
export async function runCommand(name: string, main: () => Promise<void>): Promise<void> {
  startParentWatchFromEnv();
  try {
    await main();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`${name}: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  }
}
