import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import type { Backend } from '../src/router/backend.js';
import { BackendSet } from '../src/router/backend-set.js';
import { parseEngineMetrics } from '../src/router/engine-signals.js';
import { CacheAware } from '../src/router/policies/cache-aware.js';
import { CacheLoad } from '../src/router/policies/cache-load.js';
import { createPolicy, type Policy } from '../src/router/policies/index.js';
import { globRegExp } from '../src/router/name-rules.js';
import { promptText } from '../src/router/prompt-text.js';
import { extractInto, type RequestInfo } from '../src/router/request-info.js';

const POOL = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000 };

function fleet(policy: Policy, names: string[], models = ['m']) {
  const set = new BackendSet(POOL);
  set.setPolicy(policy);
  const list = names.map((name, i) => set.upsert({ name, host: '127.0.0.1', port: 9600 + i, url: `http://127.0.0.1:${9600 + i}`, weight: 1, metadata: { type: 'openai-api', models }, isStatic: true }));
  const by = Object.fromEntries(list.map((b) => [b.name, b])) as Record<string, Backend>;
  const pick = (prompt: string | undefined, over: Partial<RequestInfo> = {}, exclude?: Set<Backend>) =>
    set.pick({ model: 'm', stream: false, promptCacheKey: undefined, size: 0, sessionKey: undefined, body: undefined, prompt, ...over }, Date.now(), exclude)!.name;
  return { set, by, pick };
}

function decisions(policy: Policy): Record<string, number> {
  const out: Record<string, number> = {};
  policy.decisions?.((p, branch, n) => (out[`${p}/${branch}`] = n));
  return out;
}

const doc = (i: number) => `document ${i}: ${'lorem ipsum '.repeat(200)}`;

describe('cache-aware policy', () => {
  it('sends a prompt that extends one a backend was sent to that backend, new prefixes round the idle fleet', () => {
    const policy = new CacheAware();
    const { pick } = fleet(policy, ['a', 'b', 'c']);
    const first = [0, 1, 2].map((i) => pick(doc(i)));
    assert.deepEqual([...first].sort(), ['a', 'b', 'c'], 'three new prefixes, three backends');
    for (let round = 0; round < 3; round++) for (const i of [0, 1, 2]) assert.equal(pick(`${doc(i)} question ${round}`), first[i]);
    assert.deepEqual(decisions(policy), { 'cache-aware/hit': 9, 'cache-aware/miss': 3, 'cache-aware/imbalance': 0, 'cache-aware/no_prompt': 0 });
  });

  it('below the threshold the match does not count: the least loaded takes it', () => {
    const policy = new CacheAware({ threshold: 0.5 });
    const { pick, by } = fleet(policy, ['a', 'b']);
    const shared = 'x'.repeat(400);
    assert.equal(pick(shared + 'y'.repeat(100)), 'a');
    by.a!.inFlight = 1; // a busier (but not unbalanced)
    assert.equal(pick(shared + 'z'.repeat(100)), 'a', '400 of 500 matched: a hit');
    assert.equal(pick(shared + 'w'.repeat(600)), 'b', '400 of 1000 matched: under 0.5, a miss');
  });

  it('when load is unbalanced beyond both guards, the least loaded takes it despite the match', () => {
    const policy = new CacheAware({ balance_abs_threshold: 4, balance_rel_threshold: 1.5 });
    const { pick, by } = fleet(policy, ['a', 'b']);
    const p = doc(7);
    const home = pick(p);
    const other = home === 'a' ? 'b' : 'a';
    by[home]!.inFlight = 5; // 5 - 0 > 4 and 5 > 1.5 * 0
    assert.equal(pick(p + '!1'), other);
    // both were sent p now: equal matches go to the lighter, so the other is made the busier
    by[other]!.inFlight = 6; // 6 - 5 = 1: balanced again
    assert.equal(pick(p + '#2'), home);
    by[other]!.inFlight = 1; // 5 - 1 = 4: not more than 4
    by[home]!.inFlight = 5;
    assert.equal(pick(p + '#2 and more'), home, 'the longer match');
    assert.equal(decisions(policy)['cache-aware/imbalance'], 1);
  });

  it('a backend excluded by a retry or not routable is passed over for the next best match', () => {
    const policy = new CacheAware();
    const { pick, by, set } = fleet(policy, ['a', 'b', 'c']);
    const p = doc(3);
    const home = pick(p);
    const second = pick(p + ' retry', {}, new Set([by[home]!]));
    assert.notEqual(second, home);
    // now both were sent it: with the first ejected, the second follows it
    by[home]!.ejectedUntil = Date.now() + 60_000;
    set.routabilityChanged(by[home]!);
    assert.equal(pick(p + ' retry'), second);
  });

  it('a backend that leaves takes its entries with it', () => {
    const policy = new CacheAware();
    const { set, pick } = fleet(policy, ['a', 'b']);
    const home = pick(doc(1));
    pick(doc(2));
    const pool = set.get(home)!.members[0]!.pool;
    const before = pool.prefix!.chars;
    set.remove(home);
    assert.ok(pool.prefix!.chars < before);
    assert.equal(pool.prefix!.match(doc(1)), 'document '.length, 'only what the other was sent too');
  });

  it('requests without prompt text go to the least loaded', () => {
    const policy = new CacheAware();
    const { pick, by } = fleet(policy, ['a', 'b']);
    by.a!.inFlight = 2;
    assert.equal(pick(undefined), 'b');
    assert.equal(decisions(policy)['cache-aware/no_prompt'], 1);
  });
});

describe('cache-load policy', () => {
  it('follows the match at even load, leaves it for a much lighter backend', () => {
    const policy = new CacheLoad({ w_queue: 0, w_kv: 0 });
    const { pick, by } = fleet(policy, ['a', 'b']);
    const p = doc(5);
    const home = pick(p);
    const other = home === 'a' ? 'b' : 'a';
    assert.equal(pick(p + ' 2'), home);
    by[home]!.inFlight = 3; // 1 - 3/8 = 0.625 > 0: still the match
    assert.equal(pick(p + ' 3'), home);
    by[home]!.inFlight = 16; // match - 16/16 < 0 (the match falls short of the whole prompt)
    assert.equal(pick(p + ' 4'), other);
    assert.deepEqual(decisions(policy), { 'cache-load/prefix': 2, 'cache-load/load': 2, 'cache-load/no_prompt': 0 });
  });

  it("scores the engines' waiting requests and KV usage while they are fresh", () => {
    let now = 1_000_000;
    const engine = { current: { staleMs: 3000 } };
    const policy = new CacheLoad({ w_prefix: 0, w_load: 0 }, 'test', engine, () => now);
    const { pick, by } = fleet(policy, ['a', 'b', 'c']);
    by.a!.engine = { waiting: 10, running: 4, kvUsage: 0.2, at: now };
    by.b!.engine = { waiting: 0, running: 4, kvUsage: 0.9, at: now };
    by.c!.engine = { waiting: 0, running: 4, kvUsage: 0.3, at: now };
    assert.equal(pick('x'), 'c');
    by.c!.engine = { waiting: 2, running: 4, kvUsage: 0.3, at: now }; // 2/10 + 0.15 vs b's 0.45
    assert.equal(pick('y'), 'c');
    by.c!.engine = { waiting: 8, running: 4, kvUsage: 0.3, at: now }; // 0.8 + 0.15
    assert.equal(pick('z'), 'b');
    now += 5000; // all stale: load alone (zero weight here), ties to the one chosen longest ago
    assert.equal(pick('w'), 'a');
  });
});

describe('policy per model', () => {
  it('exact names first, then globs in order, else the default; prompts only for cache models', () => {
    const policy = createPolicy('round-robin', {
      sizeThresholdBytes: 1e9,
      perModel: { 'org/*': { policy: 'least-load' }, 'org/chat': { policy: 'cache-aware', threshold: 0.5 }, 'o?g/*': { policy: 'cache-load' } },
    });
    assert.equal(policy.wantsPrompt?.('org/chat'), true);
    assert.equal(policy.wantsPrompt?.('org/other'), false);
    assert.equal(policy.wantsPrompt?.('oxg/x'), true);
    assert.equal(policy.wantsPrompt?.('plain'), false);
    assert.equal(policy.usesEngineSignals?.('oxg/x'), true);
    assert.equal(policy.usesEngineSignals?.('org/chat'), false);
    const { pick } = fleet(policy, ['a', 'b'], ['org/chat']);
    const home = pick(doc(1), { model: 'org/chat' });
    assert.equal(pick(`${doc(1)} more`, { model: 'org/chat' }), home);
    assert.equal(decisions(policy)['cache-aware/hit'], 1);
  });

  it('no rules: the default alone, and it asks for no prompt', () => {
    const policy = createPolicy('least-load', { sizeThresholdBytes: 1e9, perModel: {} });
    assert.equal(policy.wantsPrompt, undefined);
    assert.equal(policy.usesEngineSignals, undefined);
  });

  it('refuses unknown policies and parameters, naming where', () => {
    assert.throws(() => createPolicy('round-robin', { sizeThresholdBytes: 1, perModel: { x: { policy: 'cache-awar' } } }), /policies\."x": unknown policy 'cache-awar'/);
    assert.throws(() => createPolicy('cache-aware', { sizeThresholdBytes: 1, params: { treshold: '0.2' } }), /unknown parameter 'treshold' \(did you mean 'threshold'\?\)/);
    assert.throws(() => createPolicy('cache-aware', { sizeThresholdBytes: 1, params: { threshold: '2' } }), /'threshold' expects a number from 0 to 1/);
    assert.throws(() => createPolicy('least-load', { sizeThresholdBytes: 1, params: { threshold: '0.2' } }), /takes no parameters/);
    assert.equal(createPolicy('cache-aware', { sizeThresholdBytes: 1, params: { threshold: '0.2' } }).name, 'cache-aware');
  });

  it('globs: * spans slashes, ? one character, the rest literal', () => {
    assert.ok(globRegExp('meta/*').test('meta/llama/3'));
    assert.ok(!globRegExp('a.b').test('axb'));
    assert.ok(globRegExp('m?').test('m1') && !globRegExp('m?').test('m12'));
  });
});

describe('prompt text', () => {
  it("a chat's next turn starts with the turn before; content parts count by their text", () => {
    const turn1 = [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'hello' }, { type: 'image_url', image_url: { url: 'http://x/i.png' } }] }];
    const turn2 = [...turn1, { role: 'assistant', content: 'hi' }, { role: 'user', content: 'and?' }];
    const t1 = promptText({ messages: turn1 })!;
    const t2 = promptText({ messages: turn2 })!;
    assert.ok(t2.startsWith(t1));
    assert.ok(t1.includes('hello') && t1.includes('http://x/i.png') && t1.includes('system'));
    // roles are part of it: the same words from another role differ
    assert.notEqual(promptText({ messages: [{ role: 'user', content: 'x' }] }), promptText({ messages: [{ role: 'system', content: 'x' }] }));
  });

  it('completions: the prompt, token ids one character each; odd shapes give no text or empty parts', () => {
    assert.equal(promptText({ prompt: 'abc' }), 'abc');
    assert.equal(promptText({ prompt: [97, 98, 99] }), 'abc');
    assert.equal(promptText({ prompt: Array.from({ length: 20_000 }, () => 120) })!.length, 20_000);
    assert.equal(promptText({}), undefined);
    assert.equal(promptText({ messages: [null, 3, { content: 5 }] }), '\x1e\x1f');
  });

  it('extractInto builds it only when the model wants it', () => {
    const body = Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }));
    const blank = (): RequestInfo => ({ model: undefined, stream: false, promptCacheKey: undefined, size: 0, sessionKey: undefined, body, prompt: undefined });
    assert.equal(extractInto(blank(), body).prompt, undefined);
    assert.equal(extractInto(blank(), body, (m) => m === 'other').prompt, undefined);
    assert.equal(extractInto(blank(), body, (m) => m === 'm').prompt, '\x1euser\x1fhi');
  });
});

describe('engine metrics', () => {
  it("reads vLLM's and SGLang's gauges, summing waiting over series and taking the highest KV usage", () => {
    const vllm = [
      '# HELP vllm:num_requests_waiting Number of requests waiting.',
      '# TYPE vllm:num_requests_waiting gauge',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 3.0',
      'vllm:num_requests_waiting{engine="1",model_name="m"} 2.0',
      'vllm:num_requests_waiting_by_reason{reason="x"} 100',
      'vllm:num_requests_running{model_name="m"} 7',
      'vllm:kv_cache_usage_perc{model_name="m"} 0.25',
      'vllm:gpu_cache_usage_perc{model_name="m"} 0.5 1700000000',
    ].join('\n');
    assert.deepEqual(parseEngineMetrics(vllm, 1), { waiting: 5, running: 7, kvUsage: 0.5, at: 1 });
    const sglang = 'sglang:num_queue_reqs{name="x"} 4\nsglang:num_running_reqs 2\nsglang:token_usage 0.75\n';
    assert.deepEqual(parseEngineMetrics(sglang, 2), { waiting: 4, running: 2, kvUsage: 0.75, at: 2 });
    assert.equal(parseEngineMetrics('# nothing here\nother_metric 1\n', 3), undefined);
    assert.equal(parseEngineMetrics('vllm:num_requests_waiting{a="}"} NaN\n', 3), undefined);
  });
});
