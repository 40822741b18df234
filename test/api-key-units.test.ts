/** Unit tests of the API keys' pure parts: the limiter on an injected clock, the key file's errors, lookups. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from './helpers/test.js';
import { KeySet, presentedKey } from '../src/router/access/api-keys.js';
import { KeyFileError, mergeKeyConfigs, parseKeyEnv, parseKeyFile, sha256Hex } from '../src/router/access/key-file.js';
import { formatReset, RateLimiter, rateLimitHeaders } from '../src/router/access/rate-limits.js';

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('rate limiter (token buckets on an injected clock)', () => {
  it('requests per minute: a burst of the limit, then one every 60/limit seconds, over ten minutes', () => {
    const c = clock();
    const limiter = new RateLimiter(c.now);
    const limits = { rpm: 6 };
    let admitted = 0;
    // probe every second for ten minutes: 6 at once, then one per 10 s
    for (let s = 0; s < 600; s++) {
      while (limiter.admit('k', limits, 0).ok) {
        admitted++;
        limiter.settle('k', limits, 0, 0);
      }
      c.advance(1000);
    }
    // ten minutes on: the one due at 600 s, then nothing
    while (limiter.admit('k', limits, 0).ok) admitted++;
    assert.equal(admitted, 6 + 60);
    const refused = limiter.admit('k', limits, 0);
    assert.equal(refused.ok, false);
    assert.equal(refused.refusal, 'requests');
    assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 10_000, String(refused.retryAfterMs));
    // after the wait it says, one request passes; just before it, none
    c.advance(refused.retryAfterMs - 1);
    assert.equal(limiter.admit('k', limits, 0).ok, false);
    c.advance(1);
    assert.equal(limiter.admit('k', limits, 0).ok, true);
  });

  it('reports limit, remaining and reset as OpenAI does, and refills to the full limit', () => {
    const c = clock();
    const limiter = new RateLimiter(c.now);
    const v = limiter.admit('k', { rpm: 60 }, 0);
    assert.deepEqual(v.requests, { limit: 60, remaining: 59, resetMs: 1000 });
    assert.deepEqual(rateLimitHeaders(v, []), ['x-ratelimit-limit-requests', '60', 'x-ratelimit-remaining-requests', '59', 'x-ratelimit-reset-requests', '1s']);
    for (let i = 0; i < 59; i++) assert.ok(limiter.admit('k', { rpm: 60 }, 0).ok);
    c.advance(120_000);
    assert.equal(limiter.admit('k', { rpm: 60 }, 0).requests!.remaining, 59, 'two idle minutes leave a full bucket, not more');
  });

  it('tokens per minute: reserves max_tokens, settles with usage, waits off a debt, refuses what can never fit', () => {
    const c = clock();
    const limiter = new RateLimiter(c.now);
    const limits = { tpm: 1200 };
    assert.equal(limiter.admit('k', limits, 1201).refusal, 'too_large');
    const a = limiter.admit('k', limits, 1000);
    assert.ok(a.ok);
    assert.equal(a.tokens!.remaining, 200);
    assert.equal(limiter.admit('k', limits, 300).refusal, 'tokens');
    // the answer used 100 of the 1000 reserved: 900 come back
    limiter.settle('k', limits, 1000, 100);
    assert.ok(limiter.admit('k', limits, 300).ok);
    limiter.settle('k', limits, 300, 2000); // far more than reserved: the bucket goes into debt
    const refused = limiter.admit('k', limits, 0);
    assert.equal(refused.refusal, 'tokens');
    // 1200 per minute = 20 per second: the debt of 900 plus one token takes 45.05 s
    assert.equal(refused.retryAfterMs, Math.ceil(((1 - (1100 - 300 - 1700)) * 60_000) / 1200));
    c.advance(refused.retryAfterMs);
    assert.ok(limiter.admit('k', limits, 0).ok);
  });

  it('requests in flight: the limit holds until one ends', () => {
    const limiter = new RateLimiter(clock().now);
    const limits = { maxParallelRequests: 2 };
    assert.ok(limiter.admit('k', limits, 0).ok);
    assert.ok(limiter.admit('k', limits, 0).ok);
    const v = limiter.admit('k', limits, 0);
    assert.equal(v.refusal, 'parallel');
    assert.ok(v.retryAfterMs > 0);
    limiter.settle('k', limits, 0, 0);
    assert.ok(limiter.admit('k', limits, 0).ok);
    assert.equal(limiter.inFlight('k'), 2);
  });

  it('keys are independent; state follows the configured keys (memory bounded by the key file)', () => {
    const limiter = new RateLimiter(clock().now);
    assert.ok(limiter.admit('a', { rpm: 1 }, 0).ok);
    assert.ok(limiter.admit('b', { rpm: 1 }, 0).ok);
    assert.equal(limiter.admit('a', { rpm: 1 }, 0).ok, false);
    limiter.settle('a', { rpm: 1 }, 0, 0);
    limiter.settle('b', { rpm: 1 }, 0, 0);
    limiter.retain(new Set(['b']));
    assert.equal(limiter.size, 1);
    // many requests leave one small state per key, nothing per request
    for (let i = 0; i < 10_000; i++) limiter.settle('b', { rpm: 1 }, 0, 0);
    assert.equal(limiter.size, 1);
  });

  it('a lowered limit applies at once; the counts so far are kept', () => {
    const c = clock();
    const limiter = new RateLimiter(c.now);
    for (let i = 0; i < 5; i++) assert.ok(limiter.admit('k', { rpm: 100 }, 0).ok);
    // a reload lowers the limit to 3: the bucket is capped, 95 left become 3
    const v = limiter.admit('k', { rpm: 3 }, 0);
    assert.ok(v.ok);
    assert.equal(v.requests!.remaining, 2);
  });

  it('formats reset durations as OpenAI does', () => {
    assert.equal(formatReset(0), '0ms');
    assert.equal(formatReset(17.2), '18ms');
    assert.equal(formatReset(1000), '1s');
    assert.equal(formatReset(11_950), '12s');
    assert.equal(formatReset(1_234), '1.3s');
    assert.equal(formatReset(59_999), '1m0s');
    assert.equal(formatReset(360_000), '6m0s');
    assert.equal(formatReset(3_723_000), '1h2m3s');
  });
});

describe('key file', () => {
  const toml = (body: string) => parseKeyFile(body, 'toml', 'keys.toml');
  const fails = (body: string, pattern: RegExp, format: 'toml' | 'json' = 'toml') =>
    assert.throws(() => parseKeyFile(body, format, 'keys.toml'), (err: unknown) => err instanceof KeyFileError && pattern.test(err.message));

  it('reads keys with their defaults; plain keys are kept only as their hash', () => {
    const c = toml('[[keys]]\nname = "a"\nkey = "sk-aaaaaaaa"\n[[keys]]\nname = "b"\nkey_sha256 = "' + 'AB'.repeat(32) + '"\nscope = "admin"\nmodels = ["m-*"]\nrpm = 5\ntpm = 100\nmax_parallel_requests = 2\npriority = -3\n');
    assert.deepEqual(c.keys[0], { name: 'a', sha256: sha256Hex('sk-aaaaaaaa'), models: ['*'], scope: 'client' });
    assert.deepEqual(c.keys[1], { name: 'b', sha256: 'ab'.repeat(32), models: ['m-*'], scope: 'admin', rpm: 5, tpm: 100, maxParallelRequests: 2, priority: -3 });
    assert.ok(!JSON.stringify(c).includes('sk-aaaaaaaa'));
  });

  it('names the key and the field of every mistake, and never repeats a key', () => {
    fails('[[keys]]\nname = "team-a"\nkey = "sk-aaaaaaaa"\nrpm = 0', /key 'team-a' \(keys\[0\]\): rpm: expected a positive integer/);
    fails('[[keys]]\nname = "team-a"\nkey = "sk-aaaaaaaa"\nrpm = 1.5', /'team-a'.*rpm/);
    fails('[[keys]]\nname = "team-a"\nkey = "sk-aaaaaaaa"\nscope = "root"', /'team-a'.*scope: expected one of client, admin, got 'root'/);
    fails('[[keys]]\nname = "team-a"\nkey = "sk-aaaaaaaa"\nrpn = 5', /'team-a'.*rpn: unknown field/);
    fails('[[keys]]\nname = "team-a"\nkey_sha256 = "abc"', /'team-a'.*key_sha256: expected 64 hex digits/);
    fails('[[keys]]\nname = "team-a"', /'team-a'.*needs key_sha256/);
    fails('[[keys]]\nname = "team-a"\nkey = "sk-aaaaaaaa"\nkey_sha256 = "' + '0'.repeat(64) + '"', /both key and key_sha256/);
    fails('[[keys]]\nname = "a"\nkey = "sk-aaaaaaaa"\n[[keys]]\nname = "a"\nkey = "sk-bbbbbbbb"', /key 'a': the name is used twice/);
    fails('[[keys]]\nname = "a"\nkey = "sk-aaaaaaaa"\n[[keys]]\nname = "b"\nkey_sha256 = "' + sha256Hex('sk-aaaaaaaa') + '"', /key 'b': the same key as 'a'/);
    fails('[[keys]]\nname = "a"\nkey = "has a space"', /key: only visible ASCII/);
    fails('[backend_key_env]\n"gpu-*" = "not a name"', /backend_key_env.gpu-\*: expected the name of an environment variable/);
    fails('{"keys": [{"name": "a", "key": "sk-aaaaaaaa", "models": "m"}]}', /'a'.*models: expected an array/, 'json');
    fails('keys = [', /not valid TOML at line 1/);
    // syntax errors say where, never what the text there is (it may be a key)
    for (const [text, format] of [['{"keys": [{"name": "a", "key": sk-secret-1234}]}', 'json'], ['{"keys": [{"name": "a", "key": "sk-secret-1234" x', 'json'], ['[[keys]]\nkey = "sk-secret-1234" x', 'toml'], ['key = sk-secret-1234', 'toml']] as const) {
      assert.throws(() => parseKeyFile(text, format, 'f'), (err: unknown) => err instanceof KeyFileError && !/secret/.test(err.message) && /not valid/.test(err.message));
    }
    fails('{"keys": ', /not valid JSON/, 'json');
    assert.throws(
      () => toml('[[keys]]\nname = "a"\nkey = "sk-secret-\u0001"'),
      (err: unknown) => err instanceof KeyFileError && !err.message.includes('sk-secret'),
    );
  });

  it('INFINI_API_KEYS: comma-separated client keys, or JSON; merged with the file without duplicates', () => {
    const env = parseKeyEnv(' sk-one-1111, sk-two-2222 ');
    assert.deepEqual(
      env.keys.map((k) => [k.name, k.scope, k.models]),
      [['env-1', 'client', ['*']], ['env-2', 'client', ['*']]],
    );
    assert.equal(parseKeyEnv('[{"name":"x","key":"sk-xxxxxxxx","scope":"admin"}]').keys[0]!.scope, 'admin');
    assert.throws(() => parseKeyEnv('sk-one-1111,,x'), KeyFileError);
    const file = toml('[[keys]]\nname = "env-1"\nkey = "sk-file-1111"');
    assert.throws(() => mergeKeyConfigs([{ config: file, source: 'f' }, { config: env, source: 'INFINI_API_KEYS' }]), /name is used twice \(also in f\)/);
  });
});

describe('key lookup', () => {
  const set = new KeySet(
    parseKeyFile('[[keys]]\nname = "a"\nkey = "sk-aaaaaaaa"\nmodels = ["m1", "fam-*"]\n[backend_key_env]\n"gpu-*" = "TEST_BACKEND_KEY"\n', 'toml', 't'),
    { TEST_BACKEND_KEY: 'backend-secret' },
  );

  it('finds keys by hash, refuses others, and matches models by name and glob', () => {
    assert.equal(set.lookup('sk-aaaaaaaa')?.name, 'a');
    assert.equal(set.lookup('sk-aaaaaaab'), undefined);
    assert.equal(set.lookup(''), undefined);
    const e = set.lookup('sk-aaaaaaaa')!;
    assert.deepEqual(['m1', 'm2', 'fam-x', 'fam', 'xfam-1'].map((m) => e.allows(m)), [true, false, true, false, false]);
    assert.equal(e.allModels, false);
    assert.deepEqual(e.digest, createHash('sha256').update('sk-aaaaaaaa').digest());
  });

  it('reads Bearer and x-api-key', () => {
    assert.equal(presentedKey({ authorization: 'Bearer sk-1' }), 'sk-1');
    assert.equal(presentedKey({ authorization: 'bearer   sk-1 ' }), 'sk-1');
    assert.equal(presentedKey({ 'x-api-key': 'sk-2' }), 'sk-2');
    assert.equal(presentedKey({ authorization: 'Basic abc' }), undefined);
    assert.equal(presentedKey({ authorization: 'Bearer ' }), undefined);
    assert.equal(presentedKey({}), undefined);
  });

  it("gives matching backends the router's own credential", () => {
    assert.equal(set.backendLine('gpu-1'), 'authorization: Bearer backend-secret\r\n');
    assert.equal(set.backendLine('cpu-1'), '');
  });
});

describe('access gate (in process, fake requests)', async () => {
  const { AccessGate, LocalLimits } = await import('../src/router/access/gate.js');
  const { KeySource } = await import('../src/router/access/key-source.js');
  const { RouterErrors } = await import('../src/router/errors.js');
  const { RateLimiter: Limiter } = await import('../src/router/access/rate-limits.js');
  type Info = import('../src/router/request-info.js').RequestInfo;

  const silent = { info() {}, warn() {}, error() {} } as unknown as import('../src/common/log.js').Logger;
  const envText = JSON.stringify([
    { name: 'vip', key: 'sk-vip-00001', priority: 7, tpm: 1000 },
    { name: 'plain', key: 'sk-plain-0001' },
  ]);
  const c = clock();
  const limiter = new Limiter(c.now);
  const forwarded: Info[] = [];
  const gate = new AccessGate({
    source: new KeySource({ file: undefined, envText, log: silent }),
    keeper: new LocalLimits(limiter),
    errors: new RouterErrors('openai'),
    metricsAuth: false,
    forward: (_req, _res, info) => forwarded.push(info),
  });
  const info = (extra: Partial<Info> = {}): Info => ({ model: 'm', stream: false, promptCacheKey: undefined, size: 40, sessionKey: undefined, body: undefined, maxTokens: 100, ...extra });
  const answered: number[] = [];
  const res = () => ({ finished: false, socket: { destroyed: false }, writeHead: (status: number) => answered.push(status), end() {} }) as never;
  const req = (key: string) => ({ headers: { authorization: `Bearer ${key}` } }) as never;

  it("puts the key's priority on the request for the wait queue, and a grant that settles its reservation", () => {
    gate.admit(req('sk-vip-00001'), res(), info());
    const admitted = forwarded.pop()!;
    assert.equal(admitted.priority, 7);
    assert.ok(admitted.grant?.scansUsage);
    // reserved: 40 bytes / 4 + 100 max tokens
    assert.equal(limiter.admit('vip', { tpm: 1000 }, 0).tokens!.remaining, 890);
    limiter.settle('vip', { tpm: 1000 }, 0, 0);
    const headers: string[] = [];
    admitted.grant!.headers(headers);
    assert.deepEqual(headers.slice(0, 4), ['x-ratelimit-limit-tokens', '1000', 'x-ratelimit-remaining-tokens', '890']);
    // the answer's usage replaces the reservation: 110 reserved, 30 used
    const answer = Buffer.from('{"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}');
    admitted.grant!.scan(answer, 0, answer.length);
    admitted.grant!.settle(200, 20);
    admitted.grant!.settle(200, 20); // once only
    assert.equal(limiter.admit('vip', { tpm: 1000 }, 0).tokens!.remaining, 970);
    assert.equal(limiter.inFlight('vip'), 1);
  });

  it('no priority and no grant for a key without them; an unknown key answered 401 by the gate', () => {
    gate.admit(req('sk-plain-0001'), res(), info());
    const admitted = forwarded.pop()!;
    assert.equal(admitted.priority, undefined);
    assert.equal(admitted.grant, undefined);
    gate.admit(req('sk-nobody-0001'), res(), info());
    assert.equal(answered.pop(), 401);
    assert.equal(forwarded.length, 0);
  });
});
