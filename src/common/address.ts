/** Host to advertise to others: an explicit one, else the bind host, else loopback for a wildcard bind. */
export function advertisedHost(bindHost: string, advertise?: string): string {
  if (advertise) return advertise;
  if (bindHost === '0.0.0.0' || bindHost === '::' || bindHost === '') return '127.0.0.1';
  return bindHost;
}

/** `http://host:port`, bracketing IPv6 literals. */
export function httpUrl(host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}
