import { embeddedV4, formatIp, inCidr, parseCidr, parseIp, type Cidr, type Ip } from './cidr.js';

/**
 * Which addresses a registered service may have, so that the registry cannot be used to point the
 * router (or the registry's own probes) at addresses that are never inference servers: cloud
 * metadata services, link-local, unspecified, multicast and broadcast addresses, and schemes other
 * than http(s) (OWASP's SSRF guidance). Loopback and private ranges stay allowed (clusters live
 * there); an operator narrows further with --allow-networks / --deny-networks.
 *
 * Every IPv4 spelling a URL accepts (2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518)
 * reaches the same address, so hosts are first normalised by WHATWG URL parsing, exactly as the
 * router's own `new URL()` of the record will read them; IPv6 addresses that carry an IPv4 one
 * (::ffff:a.b.c.d and the like) are judged by that IPv4 address as well.
 */

/** The rule that refused an address, named in every refusal. */
export type GuardRule = 'scheme' | 'invalid-host' | 'metadata' | 'link-local' | 'unspecified' | 'multicast' | 'broadcast' | 'deny-networks' | 'allow-networks';

export interface Refusal {
  rule: GuardRule;
  /** A sentence naming the address and the rule, for error answers and logs. */
  reason: string;
}

export interface NetworkPolicy {
  /** CIDR blocks always refused (they win over the allow list). */
  deny?: readonly string[];
  /** When given (non-empty), the only blocks allowed, besides what the built-in rules refuse anyway. */
  allow?: readonly string[];
}

/** Instance metadata services: AWS/GCP/Azure/OpenStack, AWS ECS, AWS over IPv6, Alibaba, Oracle. */
const METADATA_IPS = ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254', '100.100.100.200', '192.0.0.192'].map((t) => parseIp(t)!);
const METADATA_NAMES = new Set(['metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

const block = (text: string) => parseCidr(text)!;
/** Built-in rules, in the order they are reported: the most specific name first. */
const BUILT_IN: readonly { rule: GuardRule; what: string; blocks: Cidr[] }[] = [
  { rule: 'unspecified', what: 'an unspecified address', blocks: [block('0.0.0.0/8'), block('::/128')] },
  { rule: 'link-local', what: 'a link-local address', blocks: [block('169.254.0.0/16'), block('fe80::/10')] },
  { rule: 'multicast', what: 'a multicast address', blocks: [block('224.0.0.0/4'), block('ff00::/8')] },
  { rule: 'broadcast', what: 'the broadcast address', blocks: [block('255.255.255.255/32')] },
];

/** Parses a list of CIDR blocks; throws naming the first bad one (`flag` says where it came from). */
export function parseNetworks(list: readonly string[], flag: string): Cidr[] {
  return list.map((text) => {
    const c = parseCidr(text);
    if (!c) throw new Error(`${flag}: '${text}' is not a CIDR block (such as 10.0.0.0/8 or fd00::/8) nor an IP address`);
    return c;
  });
}

/** The host of a URL authority, normalised: a dotted quad, a bracketed IPv6 address, or a lower-case name. */
function normalise(host: string): string | undefined {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  try {
    return new URL(`http://${h}/`).hostname;
  } catch {
    return undefined;
  }
}

export class AddressGuard {
  private readonly deny: Cidr[];
  private readonly allow: Cidr[];

  constructor(policy: NetworkPolicy = {}) {
    this.deny = parseNetworks(policy.deny ?? [], '--deny-networks');
    this.allow = parseNetworks(policy.allow ?? [], '--allow-networks');
  }

  /** Whether an operator narrowed the defaults (then host names need resolving to be judged). */
  get narrowed(): boolean {
    return this.deny.length > 0 || this.allow.length > 0;
  }

  /** A service URL as registered: its scheme, then its host. Never throws. */
  checkUrl(url: string): Refusal | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { rule: 'invalid-host', reason: `'${url}' is not a valid URL` };
    }
    return this.checkParsed(parsed);
  }

  /** A URL already parsed (a probe's target, a redirect): no second parse. Never throws. */
  checkParsed(parsed: URL): Refusal | undefined {
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return { rule: 'scheme', reason: `scheme '${parsed.protocol.slice(0, -1)}' is not allowed (only http and https)` };
    if (parsed.hostname === '') return { rule: 'invalid-host', reason: `'${parsed.href}' has no host` };
    return this.checkNormalised(parsed.hostname);
  }

  /**
   * A host as registered (`host` field, or a URL's host): a name, or an IP address in any spelling.
   * A name is refused only when it is a metadata service's; what it resolves to is the router's
   * check at connect time (checkAddress). Never throws.
   */
  checkHost(host: string): Refusal | undefined {
    // a zone (fe80::1%eth0) names an interface, not another address: judged without it
    const h = normalise(host.includes(':') ? host.replace(/%[^\]]*/, '') : host);
    if (h === undefined || h === '') return { rule: 'invalid-host', reason: `'${host}' is not a valid host` };
    return this.checkNormalised(h);
  }

  /** An address a name resolved to, as DNS returns it (dotted quad or IPv6 text). Never throws. */
  checkAddress(address: string): Refusal | undefined {
    const ip = parseIp(address);
    if (!ip) return { rule: 'invalid-host', reason: `'${address}' is not an IP address` };
    return this.checkIp(ip);
  }

  private checkNormalised(h: string): Refusal | undefined {
    if (h.startsWith('[')) return this.checkIp(parseIp(h)!);
    const ip = parseIp(h);
    if (ip) return this.checkIp(ip);
    const name = h.endsWith('.') ? h.slice(0, -1) : h;
    if (METADATA_NAMES.has(name)) return { rule: 'metadata', reason: `'${name}' is a cloud metadata service` };
    return undefined;
  }

  checkIp(ip: Ip): Refusal | undefined {
    const inner = embeddedV4(ip);
    const shown = inner ? `${formatIp(ip)} (${formatIp(inner)})` : formatIp(ip);
    for (const candidate of inner ? [ip, inner] : [ip]) {
      if (METADATA_IPS.some((m) => m.family === candidate.family && m.value === candidate.value)) return { rule: 'metadata', reason: `${shown} is a cloud metadata address` };
    }
    for (const candidate of inner ? [ip, inner] : [ip]) {
      for (const r of BUILT_IN) if (r.blocks.some((b) => inCidr(candidate, b))) return { rule: r.rule, reason: `${shown} is ${r.what}` };
    }
    // an operator's blocks match an address in either spelling: IPv4 also as ::ffff:a.b.c.d (as net.BlockList does)
    const spellings = inner ? [ip, inner] : ip.family === 4 ? [ip, { family: 6 as const, value: 0xffff00000000n | ip.value }] : [ip];
    for (const candidate of spellings) {
      const hit = this.deny.find((b) => inCidr(candidate, b));
      if (hit) return { rule: 'deny-networks', reason: `${shown} is in ${hit.text} (--deny-networks)` };
    }
    if (this.allow.length > 0 && !this.allow.some((b) => spellings.some((c) => inCidr(c, b)))) {
      return { rule: 'allow-networks', reason: `${shown} is outside --allow-networks (${this.allow.map((b) => b.text).join(', ')})` };
    }
    return undefined;
  }
}
