import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { UsageError, type OptionValues } from './command.js';

/** Reads a JSON or TOML file (by extension; TOML otherwise) into a plain object. */
export function readConfigObject(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`config file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  try {
    const data = path.endsWith('.json') ? JSON.parse(text) : parseToml(text);
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('expected an object at the top level');
    return data as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`config file ${path}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * Merges a config file whose keys are flag names (`router-port` or `router_port`) into parsed
 * flags: a flag given on the command line (or by its environment variable) wins over the file,
 * the file wins over defaults. Unknown keys are reported back for a warning.
 */
export function mergeFlagFile(
  path: string,
  values: OptionValues,
  given: ReadonlySet<string>,
  types: Record<string, 'string' | 'boolean'>,
): { unknown: string[] } {
  const data = readConfigObject(path);
  const unknown: string[] = [];
  for (const [rawKey, value] of Object.entries(data)) {
    const key = rawKey.replace(/_/g, '-');
    const type = types[key];
    if (!type || key === 'config' || key === 'help' || key === 'version') {
      unknown.push(rawKey);
      continue;
    }
    if (given.has(key)) continue;
    if (type === 'boolean') {
      if (typeof value !== 'boolean') throw new UsageError(`config file ${path}: key '${rawKey}': expected true or false`);
      values[key] = value;
    } else {
      if (typeof value !== 'string' && typeof value !== 'number') throw new UsageError(`config file ${path}: key '${rawKey}': expected a string or a number`);
      values[key] = String(value);
    }
  }
  return { unknown };
}
