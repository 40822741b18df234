/**
 * Micro-benchmark of the cache-aware policy's cost per request: the prefix match, the scan of the
 * candidates and the record of the prompt (BackendSet.pick with CacheAware), for prompts of 1k,
 * 10k and 100k characters over 4 and 64 backends, against round robin's pick in the same run.
 * Workload: 64 sessions, each prompt a session's long prefix plus a new 200-character tail (a
 * chat's next turn): every request matches most of its prompt and adds a leaf.
 * Run: node --expose-gc --import tsx bench/cache-policy-micro.ts [rounds] (a collection before each timed run)
 */
import { mulberry32 } from '../src/mock/text-generator.js';
import { BackendSet } from '../src/router/backend-set.js';
import { CacheAware } from '../src/router/policies/cache-aware.js';
import type { Policy } from '../src/router/policies/policy.js';
import { WeightedRoundRobin } from '../src/router/policies/weighted-round-robin.js';
import type { RequestInfo } from '../src/router/request-info.js';

const POOL = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000 };
const SESSIONS = 64;
const TAIL = 200;
const rounds = Number(process.argv[2] ?? 5);

const rand = mulberry32(1);
const words = ['the', 'model', 'cache', 'prefix', 'router', 'engine', 'token', 'request', 'answer', 'question'];
function text(n: number): string {
  let s = '';
  while (s.length < n) s += words[Math.floor(rand() * words.length)] + ' ';
  // a flat copy, as the router's own prompt text is once read
  return (s.slice(0, n) + ' ').slice(0, -1);
}

function fleet(policy: Policy, k: number) {
  const set = new BackendSet(POOL);
  set.setPolicy(policy);
  for (let i = 0; i < k; i++) set.upsert({ name: `b${String(i).padStart(3, '0')}`, host: '127.0.0.1', port: 10000 + i, url: `http://127.0.0.1:${10000 + i}`, weight: 1, metadata: { type: 'openai-api', models: ['m'] }, isStatic: true });
  return set;
}

function prompts(len: number, count: number): string[] {
  const prefixes = Array.from({ length: SESSIONS }, () => text(len - TAIL));
  return Array.from({ length: count }, (_, i) => prefixes[i % SESSIONS]! + text(TAIL)).map((p) => (p + ' ').slice(0, -1));
}

function run(policy: Policy, k: number, list: string[]): number {
  const set = fleet(policy, k);
  const info: RequestInfo = { model: 'm', stream: false, promptCacheKey: undefined, size: 0, sessionKey: undefined, body: undefined, prompt: undefined };
  const now = Date.now();
  (globalThis as { gc?: () => void }).gc?.();
  // warm-up: every session's prefix is sent once
  for (let i = 0; i < SESSIONS; i++) {
    info.prompt = list[i];
    set.pick(info, now);
  }
  const start = process.hrtime.bigint();
  for (let i = SESSIONS; i < list.length; i++) {
    info.prompt = list[i];
    set.pick(info, now);
  }
  return Number(process.hrtime.bigint() - start) / (list.length - SESSIONS);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[] = ['| prompt chars | backends | cache-aware ns/request | round-robin ns/request | index chars (limit 8 Mi) | index nodes | heap after (MB) |', '|---|---|---|---|---|---|---|'];
for (const len of [1_000, 10_000, 100_000]) {
  const count = len >= 100_000 ? 1000 : len >= 10_000 ? 5000 : 20_000;
  const list = prompts(len, count);
  for (const k of [4, 64]) {
    const ca: number[] = [];
    const rr: number[] = [];
    let chars = 0;
    let nodes = 0;
    let heap = 0;
    for (let r = 0; r < rounds; r++) {
      const policy = new CacheAware();
      ca.push(run(policy, k, list));
      rr.push(run(new WeightedRoundRobin(), k, list));
      // the index of the last fleet: find it through a fresh run's pool
      const set = fleet(new CacheAware(), k);
      const info: RequestInfo = { model: 'm', stream: false, promptCacheKey: undefined, size: 0, sessionKey: undefined, body: undefined, prompt: undefined };
      for (const p of list) {
        info.prompt = p;
        set.pick(info, Date.now());
      }
      const idx = set.get('b000')!.members[0]!.pool.prefix!;
      chars = idx.chars;
      nodes = idx.nodes;
      (globalThis as { gc?: () => void }).gc?.();
      heap = process.memoryUsage().heapUsed / 1e6;
    }
    rows.push(`| ${len} | ${k} | ${median(ca).toFixed(0)} | ${median(rr).toFixed(0)} | ${chars} | ${nodes} | ${heap.toFixed(0)} |`);
  }
}
console.log(rows.join('\n'));
