import type { AddressGuard } from '../common/address-guard.js';
import type { ServicePatch } from './record.js';

/**
 * Why a registration (or an update) may not point where it does, naming the field and the rule,
 * or undefined. `url` is where the router sends requests; `host` is where the registry probes an
 * openai-api record's babysitter (port+1): both are checked.
 */
export function refusedAddress(guard: AddressGuard, reg: Pick<ServicePatch, 'url' | 'host' | 'hostname'>): string | undefined {
  for (const field of ['url', 'host'] as const) {
    const value = reg[field];
    if (value === undefined) continue;
    const refusal = field === 'url' ? guard.checkUrl(value) : guard.checkHost(value);
    if (refusal) return `field '${field}' refused (${refusal.rule}): ${refusal.reason}`;
  }
  return undefined;
}
