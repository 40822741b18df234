import { UsageError } from '../../common/command.js';
import { nearest } from '../../common/nearest.js';

/** A policy's parameters as given (config file table, or --policy-param KEY=VALUE strings). */
export type PolicyParams = Readonly<Record<string, unknown>>;

/** A numeric parameter of a policy: its default, bounds and meaning (for errors and docs). */
export interface NumberParam {
  default: number;
  min: number;
  max: number;
  help: string;
}

/**
 * Reads `params` against `spec`: every key must be one of it (a near miss is named), every value
 * a number in range (strings of numbers too: flags give strings). `where` names the place in errors.
 */
export function readParams<K extends string>(spec: Readonly<Record<K, NumberParam>>, params: PolicyParams, where: string): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const key of Object.keys(spec) as K[]) out[key] = spec[key].default;
  for (const [key, raw] of Object.entries(params)) {
    if (!(key in spec)) {
      const hint = nearest(key, Object.keys(spec));
      throw new UsageError(`${where}: unknown parameter '${key}'${hint ? ` (did you mean '${hint}'?)` : ''}; known: ${Object.keys(spec).join(', ')}`);
    }
    const p = spec[key as K];
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
    if (!Number.isFinite(n) || n < p.min || n > p.max) throw new UsageError(`${where}: parameter '${key}' expects a number from ${p.min} to ${p.max}, got ${JSON.stringify(raw)}`);
    out[key as K] = n;
  }
  return out;
}
