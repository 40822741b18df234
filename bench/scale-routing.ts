/**
 * In-process microbenchmark of the router's backend index and routing decision (issue 15):
 * - decisions: ns per routing decision for each policy at K backends per model and N in all;
 * - membership: µs per join and per leave at N backends, and ms to apply a registry listing of N.
 *
 *   node --import tsx bench/scale-routing.ts [--json] [--src DIR] [--sizes 1000,10000,50000]
 *
 * `--src` measures another checkout's src/ (a copy of an older commit) for before/after ratios;
 * one that predates the incremental index is driven through its old API (candidates + select).
 * Bounded in time: each figure is the median of 3 timed runs of at most ~100 ms each.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    src: { type: 'string' },
    sizes: { type: 'string', default: '1000,10000,50000' },
    /** Largest N whose listing is applied (an O(N²) index needs minutes for 50,000). */
    'listing-max': { type: 'string', default: '1000000' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write('node --import tsx bench/scale-routing.ts [--json] [--src DIR] [--sizes 1000,10000,50000] [--listing-max N]\n');
  process.exit(0);
}

const here = dirname(fileURLToPath(import.meta.url));
const srcDir = opts.src ? resolve(opts.src) : resolve(here, '..', 'src');
const load = (path: string): Promise<any> => import(pathToFileURL(resolve(srcDir, path)).href);
const [{ BackendSet }, { createPolicy }, { RegistryWatcher }, { createLogger }] = await Promise.all([
  load('router/backend-set.js'),
  load('router/policies/index.js'),
  load('router/registry-watcher.js'),
  load('common/log.js'),
]);
const incremental = typeof BackendSet.prototype.pick === 'function';

const POOL = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000 };
const THRESHOLD = 1000;
const PER_MODEL = 10;
const IN_FLIGHT = 64;

interface Decision {
  policy: string;
  k: number;
  n: number;
  ns: number;
}
interface Membership {
  n: number;
  join_us: number;
  leave_us: number;
  apply_listing_ms: number | null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A registry record of backend i (port and name unique; `models` and `cache_type` as given). */
function record(i: number, models: string[], cacheType?: string): Record<string, unknown> {
  const port = 10_000 + (i % 50_000);
  return {
    name: `backend-${String(i).padStart(6, '0')}`,
    host: '127.0.0.1',
    port,
    url: `http://127.0.0.1:${port}`,
    weight: 1,
    is_healthy: true,
    metadata: { type: 'openai-api', models, ...(cacheType ? { cache_type: cacheType } : {}) },
  };
}

function spec(r: Record<string, any>) {
  return { name: r.name, host: r.host, port: r.port, url: r.url, weight: r.weight, metadata: r.metadata, isStatic: false };
}

/** A set holding `records`, with `policy`, and a decision function as the forwarder makes it. */
function build(records: Record<string, any>[], policyName: string) {
  const set = new BackendSet(POOL);
  const policy = createPolicy(policyName, { sizeThresholdBytes: THRESHOLD });
  if (incremental) {
    set.setPolicy(policy);
    for (const r of records) set.upsert(spec(r));
  } else {
    // the old index rebuilds everything per upsert: fill it in one go so that large N can be measured
    set.onChange((all: unknown[]) => policy.onBackendsChanged?.(all));
    for (const r of records.slice(0, 1)) set.upsert(spec(r));
    const byName = set.byName as Map<string, unknown>;
    const first = set.all[0];
    for (const r of records.slice(1)) byName.set(r.name, new first.constructor(spec(r), POOL));
    set.rebuild();
  }
  const decide: (info: any, now: number) => any = incremental
    ? (info, now) => set.pick(info, now, undefined)
    : (info, now) => policy.select(set.candidates(info.model, now, undefined), info);
  return { set, decide };
}

/** Runs `fn(i)` in timed batches for ~`ms`; returns ns per call (median of 3 runs). */
function timePerCall(fn: (i: number) => void, ms = 100): number {
  for (let i = 0; i < 2000; i++) fn(i);
  const runs: number[] = [];
  let counter = 0;
  for (let r = 0; r < 3; r++) {
    let calls = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(ms * 1e6);
    let now = start;
    while (now < deadline) {
      for (let i = 0; i < 500; i++) fn(counter++);
      calls += 500;
      now = process.hrtime.bigint();
    }
    runs.push(Number(now - start) / calls);
  }
  return median(runs);
}

interface Case {
  policy: string;
  /** The policy name given to createPolicy. */
  base: string;
  session?: boolean;
  classes?: boolean;
  noModel?: boolean;
}
const CASES: Case[] = [
  { policy: 'round-robin', base: 'round-robin' },
  { policy: 'least-load', base: 'least-load' },
  { policy: 'power-of-two', base: 'power-of-two' },
  { policy: 'affinity', base: 'round-robin', session: true },
  { policy: 'round-robin+size-classes', base: 'round-robin', classes: true },
  { policy: 'round-robin, no model', base: 'round-robin', noModel: true },
];

function decisionCase(c: Case, k: number, n: number): Decision {
  const models = n / k;
  const records = Array.from({ length: n }, (_, i) => record(i, [`model-${i % models}`], c.classes ? (i % 2 ? 'static' : 'paged') : undefined));
  const { set, decide } = build(records, c.base);
  const infos = Array.from({ length: 1024 }, (_, i) => ({
    model: c.noModel ? undefined : `model-${(i * 7919) % models}`,
    stream: false,
    promptCacheKey: undefined,
    size: c.classes && i % 2 ? 2 * THRESHOLD : 10,
    sessionKey: c.session ? `m:prompt_cache:user-${i}` : undefined,
    body: undefined,
  }));
  // requests stay in flight for IN_FLIGHT decisions, as under load (least-load sees real loads)
  const ring: any[] = new Array(IN_FLIGHT).fill(undefined);
  const now = Date.now();
  const ns = timePerCall((i) => {
    const b = decide(infos[i & 1023], now);
    const slot = i % IN_FLIGHT;
    const old = ring[slot];
    if (old) old.inFlight--;
    b.inFlight++;
    ring[slot] = b;
  });
  for (const b of ring) if (b) b.inFlight--;
  void set.closeAll();
  return { policy: c.policy, k: c.policy.endsWith('no model') ? n : k, n, ns: Math.round(ns * 10) / 10 };
}

function membership(n: number, listingMax: number): Membership {
  const models = n / PER_MODEL;
  const records = Array.from({ length: n }, (_, i) => record(i, [`model-${i % models}`]));
  const { set } = build(records, 'round-robin');
  // join and leave backends of existing models (the index keeps N and every model's K in place)
  const extra = Array.from({ length: 200 }, (_, i) => spec(record(n + i, [`model-${i % models}`])));
  const joinRuns: number[] = [];
  const leaveRuns: number[] = [];
  for (let r = 0; r < 3; r++) {
    let joined = 0;
    let t = process.hrtime.bigint();
    const budget = t + 300_000_000n;
    while (joined < extra.length && (joined < 3 || process.hrtime.bigint() < budget)) set.upsert(extra[joined++]);
    joinRuns.push(Number(process.hrtime.bigint() - t) / 1000 / joined);
    t = process.hrtime.bigint();
    for (let i = 0; i < joined; i++) set.remove(extra[i]!.name);
    leaveRuns.push(Number(process.hrtime.bigint() - t) / 1000 / joined);
  }
  void set.closeAll();
  let applyMs: number | null = null;
  if (n <= listingMax) {
    // a router's first listing: the watcher reconciles it into an empty set
    const fresh = new BackendSet(POOL);
    const policy = createPolicy('round-robin', { sizeThresholdBytes: THRESHOLD });
    if (incremental) fresh.setPolicy(policy);
    else fresh.onChange((all: unknown[]) => policy.onBackendsChanged?.(all));
    const watcher = new RegistryWatcher('http://127.0.0.1:1', fresh, { syncIntervalMs: 60_000, graceMs: 60_000, log: createLogger('bench', 'silent') });
    const t = process.hrtime.bigint();
    (watcher as any).reconcile(records, Date.now(), false);
    applyMs = Math.round(Number(process.hrtime.bigint() - t) / 1e5) / 10;
    void fresh.closeAll();
  }
  const round = (v: number) => Math.round(v * 10) / 10;
  return { n, join_us: round(median(joinRuns)), leave_us: round(median(leaveRuns)), apply_listing_ms: applyMs };
}

const decisions: Decision[] = [];
const configs: Array<[number, number]> = [
  [10, 10],
  [10, 10_000],
  [1_000, 1_000],
  [10_000, 10_000],
];
for (const c of CASES) for (const [k, n] of configs) {
  if (c.noModel && k !== 10) continue;
  decisions.push(decisionCase(c, k, n));
}
const listingMax = Number(opts['listing-max']);
const members = opts.sizes.split(',').map((s) => membership(Number(s), listingMax));

const result = { src: srcDir, incremental, decisions, membership: members };
if (opts.json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const pad = (s: string | number, w: number) => String(s).padStart(w);
  const lines = [`routing decisions (${incremental ? 'incremental index' : 'old index'}, ${srcDir})`, `${'policy'.padEnd(26)}${pad('K', 8)}${pad('N', 8)}${pad('ns', 10)}`];
  for (const d of decisions) lines.push(`${d.policy.padEnd(26)}${pad(d.k, 8)}${pad(d.n, 8)}${pad(d.ns, 10)}`);
  lines.push('', `${pad('N', 8)}${pad('join µs', 12)}${pad('leave µs', 12)}${pad('listing ms', 12)}`);
  for (const m of members) lines.push(`${pad(m.n, 8)}${pad(m.join_us, 12)}${pad(m.leave_us, 12)}${pad(m.apply_listing_ms ?? '-', 12)}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
process.exit(0);
