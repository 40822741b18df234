/**
 * The simulated fleet of `npm run bench:scale`: service i of N has its own loopback address
 * (127.a.b.c, from 127.16.1.1 on) on the ports of one of the fake backend processes, and serves
 * model `m<i/10>`, so that every model has PER_MODEL backends.
 */
export const PER_MODEL = 10;

/** Addresses per second octet: b and c run 1..254, never 0 or 255. */
const PER_A = 254 * 254;

export function address(i: number): string {
  const a = 16 + Math.floor(i / PER_A);
  const r = i % PER_A;
  return `127.${a}.${1 + Math.floor(r / 254)}.${1 + (r % 254)}`;
}

export const serviceName = (i: number) => `scale-${i}`;
export const modelOf = (i: number) => `m${Math.floor(i / PER_MODEL)}`;

/** The registration of service i, its fake backend chosen round-robin among `ports`. */
export function registration(i: number, ports: readonly number[]) {
  const host = address(i);
  const port = ports[i % ports.length]!;
  return { name: serviceName(i), host, port, hostname: host, url: `http://${host}:${port}`, status: 'running', metadata: { type: 'openai-api', models: [modelOf(i)] } };
}

/** `count` models spread evenly over the fleet's N / PER_MODEL models. */
export function spreadModels(n: number, count: number): string[] {
  const models = Math.max(1, Math.floor(n / PER_MODEL));
  const out = new Set<string>();
  for (let q = 0; q < count; q++) out.add(`m${Math.floor((q * models) / count)}`);
  return [...out];
}
