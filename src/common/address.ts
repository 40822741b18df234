import { hostname } from 'node:os';

/** A bind address meaning every interface. */
export const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '';

/** A loopback address or name: reachable from this machine only. */
export const isLoopback = (host: string): boolean => /^127\./.test(host) || host === 'localhost' || host === '::1' || host === '[::1]';

/**
 * The host others are told (`--advertise-host`, else `--host`): one rule for every service. A
 * wildcard bind (0.0.0.0) is reachable on every address of the machine, so it advertises the
 * machine's host name.
 */
export function advertisedHost(bindHost: string, advertise?: string): string {
  if (advertise) return advertise;
  return isWildcard(bindHost) ? hostname() : bindHost;
}

/** Where a client on this machine reaches a service bound to `bindHost`: loopback for a wildcard bind. */
export function localHost(bindHost: string): string {
  return isWildcard(bindHost) ? '127.0.0.1' : bindHost;
}

/** `http://host:port`, bracketing IPv6 literals. */
export function httpUrl(host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}
