import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import fc from 'fast-check';
import { describe, it } from './helpers/test.js';
import { AddressGuard, parseNetworks } from '../src/common/address-guard.js';
import { embeddedV4, formatIp, inCidr, parseCidr, parseIp } from '../src/common/cidr.js';
import { ClientBuckets } from '../src/common/client-buckets.js';

const guard = new AddressGuard();

describe('CIDR arithmetic', () => {
  it('parses addresses and blocks, v4 and v6', () => {
    assert.deepEqual(parseIp('10.1.2.3'), { family: 4, value: 0x0a010203n });
    assert.deepEqual(parseIp('[::1]'), { family: 6, value: 1n });
    assert.equal(parseIp('::ffff:169.254.169.254')?.value, 0xffffa9fea9fen);
    assert.equal(parseIp('1::2:3:4:5:6:7:8'), undefined);
    assert.equal(parseIp('10.0.0'), undefined);
    assert.equal(parseIp('fe80::1%eth0'), undefined);
    const c = parseCidr('10.1.2.3/8')!;
    assert.equal(c.base, 0x0a000000n);
    assert.ok(inCidr(parseIp('10.255.0.1')!, c) && !inCidr(parseIp('11.0.0.1')!, c));
    assert.ok(inCidr(parseIp('fe80::abcd')!, parseCidr('fe80::/10')!));
    assert.ok(!inCidr(parseIp('10.0.0.1')!, parseCidr('::/0')!), 'families never match');
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', 'x/8', '10.0.0.0/-1', '']) assert.equal(parseCidr(bad), undefined, bad);
    assert.equal(parseCidr('0.0.0.0/0')!.bits, 0);
  });

  it('finds the IPv4 address inside mapped, NAT64 and compatible IPv6 addresses', () => {
    assert.equal(formatIp(embeddedV4(parseIp('::ffff:a9fe:a9fe')!)!), '169.254.169.254');
    assert.equal(formatIp(embeddedV4(parseIp('64:ff9b::a9fe:a9fe')!)!), '169.254.169.254');
    assert.equal(formatIp(embeddedV4(parseIp('::10.0.0.1')!)!), '10.0.0.1');
    assert.equal(embeddedV4(parseIp('::1')!), undefined);
    assert.equal(embeddedV4(parseIp('2001:db8::1')!), undefined);
  });

  it('formats IPv6 as RFC 5952 does', () => {
    for (const [text, shown] of [['0:0:0:0:0:0:0:1', '::1'], ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], ['::', '::'], ['fe80::', 'fe80::']]) {
      assert.equal(formatIp(parseIp(text)!), shown);
    }
  });

  it('refuses a bad block naming the flag and the block', () => {
    assert.throws(() => parseNetworks(['10.0.0.0/8', 'nope'], '--deny-networks'), /--deny-networks: 'nope' is not a CIDR block/);
    assert.throws(() => new AddressGuard({ allow: ['10.0.0.0/40'] }), /--allow-networks/);
  });
});

describe('address guard', () => {
  const refused: Array<[string, string]> = [
    ['http://169.254.169.254/', 'metadata'],
    ['http://2852039166/', 'metadata'],
    ['http://0xa9fea9fe/', 'metadata'],
    ['http://0xA9FEA9FE/', 'metadata'],
    ['http://0251.0376.0251.0376/', 'metadata'],
    ['http://169.254.43518/', 'metadata'],
    ['http://169.16689662/', 'metadata'],
    ['http://0xa9.0xfe.0xa9.0xfe/', 'metadata'],
    ['http://[::ffff:169.254.169.254]/', 'metadata'],
    ['http://[::ffff:a9fe:a9fe]/', 'metadata'],
    ['http://[fd00:ec2::254]/', 'metadata'],
    ['http://100.100.100.200/', 'metadata'],
    ['http://metadata.google.internal/', 'metadata'],
    ['http://METADATA.google.internal./', 'metadata'],
    ['http://metadata/', 'metadata'],
    ['http://user:pw@169.254.169.254:80/latest', 'metadata'],
    ['http://169.254.1.1:8000', 'link-local'],
    ['http://[fe80::1]:8000', 'link-local'],
    ['http://0.0.0.0:8000', 'unspecified'],
    ['http://0:8000', 'unspecified'],
    ['http://[::]:8000', 'unspecified'],
    ['http://224.0.0.251/', 'multicast'],
    ['http://[ff02::1]/', 'multicast'],
    ['http://255.255.255.255/', 'broadcast'],
    ['ftp://10.0.0.1/', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['gopher://127.0.0.1:6379/', 'scheme'],
    ['not a url', 'invalid-host'],
  ];
  for (const [url, rule] of refused) it(`refuses ${url} (${rule})`, () => assert.equal(guard.checkUrl(url)?.rule, rule));

  const accepted = ['http://127.0.0.1:8000', 'https://10.1.2.3/v1', 'http://192.168.0.10:8000', 'http://172.16.5.4', 'http://[::1]:8000', 'http://[fd12::1]/', 'http://localhost:8000', 'http://gpu-01.rack-3.example.com:8000', 'http://100.64.0.1/'];
  for (const url of accepted) it(`accepts ${url}`, () => assert.equal(guard.checkUrl(url), undefined));

  it('judges the host field by the same rules, any spelling, zone ids aside', () => {
    assert.equal(guard.checkHost('0xa9fea9fe')?.rule, 'metadata');
    assert.equal(guard.checkHost('::ffff:169.254.169.254')?.rule, 'metadata');
    assert.equal(guard.checkHost('fe80::1%eth0')?.rule, 'link-local');
    assert.equal(guard.checkHost('[::1]'), undefined);
    assert.equal(guard.checkHost('a b')?.rule, 'invalid-host');
  });

  it('narrows with --deny-networks (wins) and --allow-networks (exhaustive), mapped addresses included', () => {
    const g = new AddressGuard({ allow: ['10.0.0.0/8', 'fd00::/8'], deny: ['10.9.0.0/16'] });
    assert.equal(g.checkUrl('http://10.1.1.1/'), undefined);
    assert.equal(g.checkUrl('http://[fd00::5]/'), undefined);
    assert.equal(g.checkUrl('http://10.9.1.1/')?.rule, 'deny-networks');
    assert.match(g.checkUrl('http://10.9.1.1/')!.reason, /10\.9\.0\.0\/16/);
    assert.equal(g.checkUrl('http://[::ffff:10.9.1.1]/')?.rule, 'deny-networks');
    assert.equal(g.checkUrl('http://[::ffff:10.1.1.1]/'), undefined);
    assert.equal(g.checkUrl('http://127.0.0.1/')?.rule, 'allow-networks');
    assert.equal(g.checkUrl('http://169.254.169.254/')?.rule, 'metadata', 'built-in rules stay');
    // a name cannot be judged without resolving it: the router checks what it resolves to
    assert.equal(g.checkUrl('http://localhost/'), undefined);
    assert.equal(g.checkAddress('127.0.0.1')?.rule, 'allow-networks');
    assert.equal(new AddressGuard({ deny: ['127.0.0.0/8'] }).checkAddress('127.0.0.1')?.rule, 'deny-networks');
  });
});

/** net.BlockList of the built-in rules plus `deny`: an independent oracle. */
function oracle(deny: Array<{ base: string; bits: number; family: 4 | 6 }>): BlockList {
  const list = new BlockList();
  const add = (a: string, bits: number, type: 'ipv4' | 'ipv6') => list.addSubnet(a, bits, type);
  add('0.0.0.0', 8, 'ipv4');
  add('169.254.0.0', 16, 'ipv4');
  add('224.0.0.0', 4, 'ipv4');
  add('255.255.255.255', 32, 'ipv4');
  add('100.100.100.200', 32, 'ipv4');
  add('192.0.0.192', 32, 'ipv4');
  add('::', 128, 'ipv6');
  add('fe80::', 10, 'ipv6');
  add('ff00::', 8, 'ipv6');
  add('fd00:ec2::254', 128, 'ipv6');
  for (const d of deny) add(d.base, d.bits, d.family === 4 ? 'ipv4' : 'ipv6');
  return list;
}

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const v4Int = fc.nat(0xffffffff);
const dotted = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
/** IPv6 addresses that carry no IPv4 one (those are the spelling property's). */
const plainV6 = v6.filter((a) => {
  const ip = parseIp(a)!;
  return embeddedV4(ip) === undefined && ip.value >> 32n !== 0n;
});
const block4 = fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([a, bits]) => ({ base: a, bits, family: 4 as const }));
const block6 = fc.tuple(v6, fc.integer({ min: 0, max: 128 })).map(([a, bits]) => ({ base: a, bits, family: 6 as const }));

/** The shape of an IPv4 spelling (WHATWG's IPv4 parser: 1-4 parts, each decimal, 0x hex or 0 octal; a trailing dot). */
const shape = fc.record({ parts: fc.integer({ min: 1, max: 4 }), radix: fc.array(fc.constantFrom('dec', 'hex', 'HEX', 'oct'), { minLength: 4, maxLength: 4 }), dot: fc.boolean() });
type Shape = { parts: number; radix: string[]; dot: boolean };

function spell(n: number, { parts, radix, dot }: Shape): string {
  const bytes = [24, 16, 8, 0].map((s) => (n >>> s) & 255);
  // the last part holds the remaining bytes as one number
  const values = [...bytes.slice(0, parts - 1), bytes.slice(parts - 1).reduce((acc, b) => acc * 256 + b, 0)];
  const text = values.map((v, i) => (radix[i] === 'hex' ? `0x${v.toString(16)}` : radix[i] === 'HEX' ? `0X${v.toString(16).toUpperCase()}` : radix[i] === 'oct' ? `0${v.toString(8)}` : String(v))).join('.');
  return dot ? `${text}.` : text;
}

describe('address guard properties (fast-check)', () => {
  it('never throws, whatever it is given', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.webUrl(), fc.string().map((s) => `http://${s}/`), fc.ipV6().map((a) => `http://[${a}]/`)), (input) => {
        guard.checkUrl(input);
        guard.checkHost(input);
        guard.checkAddress(input);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with net.BlockList on generated addresses and deny lists', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(block4, block6), { maxLength: 4 }), fc.oneof(v4, plainV6), (deny, address) => {
        const g = new AddressGuard({ deny: deny.map((d) => `${d.base}/${d.bits}`) });
        const family = address.includes(':') ? 'ipv6' : 'ipv4';
        const expected = oracle(deny).check(address, family);
        assert.equal(g.checkAddress(address) !== undefined, expected, `${address} with ${JSON.stringify(deny)}`);
        assert.equal(g.checkUrl(`http://${family === 'ipv6' ? `[${address}]` : address}:8000/`) !== undefined, expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('gives every spelling of an IPv4 address (dotted, decimal, hex, octal, short, mapped) the canonical verdict', () => {
    const narrowed = new AddressGuard({ deny: ['10.0.0.0/8', '127.0.0.0/8'] });
    fc.assert(
      fc.property(v4Int, shape, fc.constantFrom(guard, narrowed), (n, sh, g) => {
        const canonical = g.checkAddress(dotted(n))?.rule;
        const text = spell(n, sh);
        assert.equal(g.checkUrl(`http://${text}:8000/`)?.rule, canonical, text);
        assert.equal(g.checkHost(text)?.rule, canonical, text);
        const hex = `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
        for (const mapped of [`::ffff:${dotted(n)}`, `::ffff:${hex}`, `0:0:0:0:0:ffff:${hex}`]) {
          assert.equal(g.checkUrl(`http://[${mapped}]/`)?.rule, canonical, mapped);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses any spelling of any address in a refused block', () => {
    const linkLocal = fc.nat(0xffff).map((low) => (0xa9fe0000 + low) >>> 0);
    const multicast = fc.nat(0x0fffffff).map((low) => (0xe0000000 + low) >>> 0);
    fc.assert(
      fc.property(fc.oneof(linkLocal, multicast), shape, (n, sh) => {
        const text = spell(n, sh);
        const rule = guard.checkUrl(`http://${text}/`)?.rule;
        assert.ok(rule === 'link-local' || rule === 'metadata' || rule === 'multicast', `${text}: ${rule}`);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('client buckets', () => {
  it('allows the burst, then the rate, and says how long to wait', () => {
    let now = 0;
    const b = new ClientBuckets({ ratePerS: 2, burst: 3, maxClients: 10, now: () => now });
    assert.deepEqual([b.take('a'), b.take('a'), b.take('a')], [0, 0, 0]);
    assert.equal(b.take('a'), 1);
    assert.equal(b.take('b'), 0, 'another client has its own bucket');
    now += 500;
    assert.equal(b.take('a'), 0, 'one token back after 1/rate');
    assert.equal(b.take('a'), 1);
    now += 60_000;
    assert.deepEqual([b.take('a'), b.take('a'), b.take('a'), b.take('a')], [0, 0, 0, 1], 'refills up to the burst, no more');
  });

  it('a slow rate gives a longer Retry-After', () => {
    const b = new ClientBuckets({ ratePerS: 0.1, burst: 1, maxClients: 10, now: () => 0 });
    b.take('a');
    assert.equal(b.take('a'), 10);
  });

  it('stays bounded with many client addresses, forgetting the least recently seen', () => {
    const b = new ClientBuckets({ ratePerS: 1, burst: 1, maxClients: 100, now: () => 0 });
    b.take('keep');
    for (let i = 0; i < 20_000; i++) {
      b.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      if (i % 50 === 0) b.take('keep');
      assert.ok(b.size <= 100);
    }
    assert.equal(b.size, 100);
    assert.ok(b.take('keep') > 0, 'a client seen lately is remembered (its bucket is empty)');
  });
});
