/** A bind address meaning every interface. */
export const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '';

/** A loopback address or name: reachable from this machine only. */
export const isLoopback = (host: string): boolean => /^127\./.test(host) || host === 'localhost' || host === '::1' || host === '[::1]';

/**
 * Host to advertise to others, and where a local client reaches a service: an explicit one, else
 * the bind host, else loopback for a wildcard bind.
 */
export function advertisedHost(bindHost: string, advertise?: string): string {
  if (advertise) return advertise;
  return isWildcard(bindHost) ? '127.0.0.1' : bindHost;
}

/** `http://host:port`, bracketing IPv6 literals. */
export function httpUrl(host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}
