import dns, { type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { AddressGuard } from '../../common/address-guard.js';
import { parseIp } from '../../common/cidr.js';

export const ADDRESS_REFUSED = 'UPSTREAM_ADDRESS_REFUSED';

/** A backend's address is one the router may not connect to (address-guard.ts): a failure of its own kind. */
export class AddressRefusedError extends Error {
  readonly code = ADDRESS_REFUSED;
}

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
  if (parseIp(host)) {
    const r = guard.checkHost(host);
    return r ? { refusal: new AddressRefusedError(`backend address refused (${r.rule}): ${r.reason}`) } : {};
  }
  const named = guard.checkHost(host);
  if (named) return { refusal: new AddressRefusedError(`backend address refused (${named.rule}): ${named.reason}`) };
  return { lookup: guardedLookup(guard) };
}

/**
 * dns.lookup keeping only the addresses the guard allows; none left is an AddressRefusedError.
 * (`dns.lookup` is read at each call, as net reads it, so a test can stand in for DNS.)
 */
export function guardedLookup(guard: AddressGuard): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return (callback as (e: Error) => void)(err);
      const allowed = addresses.filter((a) => guard.checkAddress(a.address) === undefined);
      if (allowed.length === 0) {
        const first = addresses[0];
        const r = first ? guard.checkAddress(first.address) : undefined;
        const why = r ? `${hostname} resolves to ${first!.address}, refused (${r.rule}): ${r.reason}` : `${hostname} resolves to no address`;
        return (callback as (e: Error) => void)(new AddressRefusedError(`backend address refused: ${why}`));
      }
      if (options.all) (callback as (e: null, a: LookupAddress[]) => void)(null, allowed);
      else callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
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
