import type { LookupFunction } from 'node:net';
import type { AddressGuard } from '../../common/address-guard.js';
import { parseIp } from '../../common/cidr.js';
import { AddressRefusedError, guardedLookup } from '../../common/guarded-lookup.js';

export { ADDRESS_REFUSED, AddressRefusedError } from '../../common/guarded-lookup.js';

/**
 * How one backend's connections get their address under the guard, decided once per backend: an IP
 * literal is judged here and then never again (`refusal`); a name is resolved at every connect
 * (pooled connections make that rare) and only addresses the guard allows are connected to, so a
 * name that later resolves somewhere refused (DNS rebinding) is refused then.
 */
export interface AddressPolicy {
  lookup?: LookupFunction;
  refusal?: AddressRefusedError;
}

export function addressPolicy(guard: AddressGuard, host: string): AddressPolicy {
  // a literal's verdict is final; a name passing the name rules is judged again by what it resolves to
  const r = guard.checkHost(host);
  if (r) return { refusal: new AddressRefusedError(`backend address refused (${r.rule}): ${r.reason}`) };
  return parseIp(host) ? {} : { lookup: guardedLookup(guard) };
}

/** Resolves a name the way a connect would (for health checks): the refusal, or undefined when some address is allowed. */
export function resolveRefusal(policy: AddressPolicy | undefined, host: string): Promise<AddressRefusedError | undefined> {
  if (policy === undefined) return Promise.resolve(undefined);
  if (policy.refusal) return Promise.resolve(policy.refusal);
  const lookup = policy.lookup;
  if (!lookup) return Promise.resolve(undefined);
  return new Promise((resolve) =>
    lookup(host, { all: true }, (err) => resolve(err instanceof AddressRefusedError ? err : undefined)),
  );
}
