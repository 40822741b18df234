import dns, { type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { AddressGuard } from './address-guard.js';

export const ADDRESS_REFUSED = 'UPSTREAM_ADDRESS_REFUSED';

/** A backend's address is one the router may not connect to (address-guard.ts): a failure of its own kind. */
export class AddressRefusedError extends Error {
  readonly code = ADDRESS_REFUSED;
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

/** What a health probe needs to keep to allowed addresses, redirects included (http-probe.ts). */
export interface ProbeGuard {
  /** Whether a target's scheme or literal host is refused (names are judged by `lookup`). */
  refuses(target: URL): boolean;
  lookup: LookupFunction;
}

export function probeGuard(guard: AddressGuard): ProbeGuard {
  return { refuses: (target) => guard.checkParsed(target) !== undefined, lookup: guardedLookup(guard) };
}
