import { isIPv4, isIPv6 } from 'node:net';

/**
 * IP addresses as numbers and CIDR blocks over them: IPv4 as a 32-bit value, IPv6 as a 128-bit
 * one. Only canonical-ish literals are parsed here (dotted quads, RFC 4291 text); the odd IPv4
 * spellings a URL accepts (decimal, hex, octal, short forms) are normalised by WHATWG URL parsing
 * before anything gets here (see address-guard.ts).
 */
export interface Ip {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr {
  family: 4 | 6;
  /** The block's first address (host bits cleared). */
  base: bigint;
  bits: number;
  /** As written, for messages. */
  text: string;
}

function parseV4(text: string): bigint | undefined {
  if (!isIPv4(text)) return undefined;
  let v = 0n;
  for (const part of text.split('.')) v = (v << 8n) | BigInt(Number(part));
  return v;
}

function parseV6(text: string): bigint | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  // an embedded dotted quad in the last 32 bits becomes two hex groups
  let body = text;
  const lastColon = body.lastIndexOf(':');
  const tail = body.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseV4(tail);
    if (v4 === undefined) return undefined;
    body = `${body.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = halves.length === 2 ? [...head, ...Array<string>(missing).fill('0'), ...rest] : head;
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return v;
}

/** A plain IP literal (`10.0.0.1`, `fe80::1`, `[::1]`), or undefined. */
export function parseIp(text: string): Ip | undefined {
  const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const v4 = parseV4(t);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseV6(t);
  return v6 !== undefined ? { family: 6, value: v6 } : undefined;
}

const width = (family: 4 | 6) => (family === 4 ? 32 : 128);
const mask = (family: 4 | 6, bits: number) => ((1n << BigInt(bits)) - 1n) << BigInt(width(family) - bits);

/** `10.0.0.0/8`, `fd00::/8`, or a bare address (a block of one); undefined when malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const t = text.trim();
  const slash = t.indexOf('/');
  const ip = parseIp(slash === -1 ? t : t.slice(0, slash));
  if (!ip) return undefined;
  let bits = width(ip.family);
  if (slash !== -1) {
    const b = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b) || Number(b) > bits) return undefined;
    bits = Number(b);
  }
  return { family: ip.family, base: ip.value & mask(ip.family, bits), bits, text: t };
}

export function inCidr(ip: Ip, cidr: Cidr): boolean {
  return ip.family === cidr.family && (ip.value & mask(cidr.family, cidr.bits)) === cidr.base;
}

const MAPPED = parseCidr('::ffff:0:0/96')!;
const NAT64 = parseCidr('64:ff9b::/96')!;
const COMPAT = parseCidr('::/96')!;

/**
 * The IPv4 address inside an IPv6 one that reaches it: IPv4-mapped (`::ffff:a.b.c.d`, which a
 * dual-stack socket connects to over IPv4), NAT64's well-known prefix, and the deprecated
 * IPv4-compatible form (`::a.b.c.d`, but not `::` or `::1`).
 */
export function embeddedV4(ip: Ip): Ip | undefined {
  if (ip.family !== 6) return undefined;
  const low = ip.value & 0xffffffffn;
  if (inCidr(ip, MAPPED) || inCidr(ip, NAT64)) return { family: 4, value: low };
  if (inCidr(ip, COMPAT) && low > 1n) return { family: 4, value: low };
  return undefined;
}

/** Dotted quad or RFC 5952 text (for messages). */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((ip.value >> s) & 0xffn)).join('.');
  const groups = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((ip.value >> s) & 0xffffn).toString(16));
  // the longest run of two or more zero groups becomes ::
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best === -1) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
