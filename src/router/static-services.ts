import { readFileSync } from 'node:fs';
import { UsageError } from '../common/command.js';
import { httpUrl } from '../common/address.js';
import type { BackendSpec } from './backend.js';

/**
 * Reads a static services file in any of the original's three shapes:
 * `{"static_services":{"services":[...]}}`, `{"services":[...]}` or a bare array. Each entry needs
 * `name`, `host`, `port`; `weight` defaults to 1 and `metadata` to {}; other keys are ignored.
 */
export function loadStaticServices(path: string): BackendSpec[] {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`static services file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  let list: unknown;
  let where = '';
  const obj = data as Record<string, any> | null;
  if (Array.isArray(data)) list = data;
  else if (obj && typeof obj === 'object' && obj.static_services && typeof obj.static_services === 'object' && Array.isArray(obj.static_services.services)) {
    list = obj.static_services.services;
    where = 'static_services.';
  } else if (obj && typeof obj === 'object' && Array.isArray(obj.services)) {
    list = obj.services;
  } else {
    throw new UsageError(`static services file ${path}: expected {"services": [...]}, {"static_services": {"services": [...]}} or an array`);
  }
  return (list as unknown[]).map((entry, i) => {
    const key = `${where}services[${i}]`;
    const fail = (field: string, problem: string) => new UsageError(`static services file ${path}: key '${key}.${field}': ${problem}`);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new UsageError(`static services file ${path}: key '${key}': expected an object`);
    const e = entry as Record<string, unknown>;
    if (typeof e.name !== 'string' || e.name === '') throw fail('name', 'expected a non-empty string');
    if (typeof e.host !== 'string' || e.host === '') throw fail('host', 'expected a non-empty string');
    if (!Number.isInteger(e.port) || (e.port as number) < 1 || (e.port as number) > 65535) throw fail('port', 'expected an integer from 1 to 65535');
    if (e.weight !== undefined && (!Number.isInteger(e.weight) || (e.weight as number) < 0)) throw fail('weight', 'expected a non-negative integer');
    if (e.metadata !== undefined && e.metadata !== null && (typeof e.metadata !== 'object' || Array.isArray(e.metadata))) throw fail('metadata', 'expected an object');
    return {
      name: e.name,
      host: e.host,
      port: e.port as number,
      url: httpUrl(e.host, e.port as number),
      weight: (e.weight as number | undefined) ?? 1,
      metadata: (e.metadata as Record<string, unknown> | null | undefined) ?? {},
      isStatic: true,
    };
  });
}
