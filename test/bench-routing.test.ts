import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { ENGINE_PROFILES } from '../src/mock/engine-profiles.js';
import { chainedBlockHashes } from '../src/mock/kv-blocks.js';
import { countTokens } from '../src/mock/tokenizer.js';
import { alive } from '../bench/processes.js';
import { allowedOverSlo, type RequestRecord } from '../bench/routing-client.js';
import { mockSequence, scaleProfile, simulate } from '../bench/routing-model.js';
import { capacityEstimate, goodput, nearestRate, pointResult, routingChecks, routingMarkdown, worstLoad, type PointResult, type PolicyRun, type RoutingReport, type WorkloadResult } from '../bench/routing-report.js';
import { DEFAULT_SHAPE, makeWorkload, mockChatPrompt, poissonArrivals, type MockAnswers } from '../bench/routing-workloads.js';
import { ROOT, tempDir } from './helpers/services.js';

const answers: MockAnswers = { seed: 0, name: 'engine', model: 'm', outputTokens: 64, maxTokens: 24 };
const cpu = { mocks: 0.2, busiestMock: 0.06, router: 0.05, client: 0.05, total: 0.3 };

function point(rate: number, pass: boolean, over: Partial<PointResult> = {}): PointResult {
  return { rate, requests: 100, completed: 100, errors: 0, cutOff: 0, cut: false, ttftMeanMs: 100, ttftP99Ms: 200, ttftLowerBound: false, itlMeanMs: 20, hitRate: 0.5, loads: [25, 25, 25, 25], loadMaxOverMean: 1, cpu, maxLagMs: 2, pass, ...over };
}

function policyRun(policy: string, points: PointResult[]): PolicyRun {
  return { policy, routerArgs: ['--policy', policy], points, goodput: goodput(points) };
}

describe('bench:routing workloads', () => {
  it('are the same requests for the same seed, and differ for another', () => {
    for (const name of ['chat', 'docs', 'random', 'hot'] as const) {
      const a = makeWorkload(name, 3, DEFAULT_SHAPE, answers);
      const b = makeWorkload(name, 3, DEFAULT_SHAPE, answers);
      const c = makeWorkload(name, 4, DEFAULT_SHAPE, answers);
      const ra = Array.from({ length: 20 }, () => a.next());
      assert.deepEqual(Array.from({ length: 20 }, () => b.next()), ra, name);
      assert.notDeepEqual(Array.from({ length: 20 }, () => c.next()), ra, name);
      for (const r of ra) assert.equal(r.promptTokens, countTokens(mockChatPrompt(r.messages)) + 2);
    }
  });

  it("chat: a session's next turn quotes the turn before and the mock's answer, so its blocks are a prefix of the next", () => {
    const w = makeWorkload('chat', 1, { ...DEFAULT_SHAPE, chatSessions: 1, chatTurns: [3, 3] }, answers);
    const [t1, t2, t3] = [w.next(), w.next(), w.next()];
    assert.equal(t1!.key, t2!.key);
    assert.deepEqual(t2!.messages.slice(0, t1!.messages.length), t1!.messages);
    assert.equal(t2!.messages[t1!.messages.length]!.role, 'assistant');
    const s1 = mockSequence(t1!, answers);
    const s2 = mockSequence(t2!, answers);
    assert.equal(s1.ids.length - s1.promptTokens, 24);
    // everything the engine computed for turn 1 (prompt, `assistant:`, answer) begins turn 2
    assert.deepEqual(s2.ids.slice(0, s1.ids.length), s1.ids);
    const h1 = chainedBlockHashes(s1.ids, 16);
    assert.deepEqual(chainedBlockHashes(s2.ids, 16).slice(0, h1.length), h1);
    assert.ok(t3!.messages.length > t2!.messages.length);
    // the session ended after 3 turns: the next request opens another
    assert.notEqual(w.next().key, t1!.key);
  });

  it('docs and hot share their prefixes as described; random shares none', () => {
    const docs = makeWorkload('docs', 1);
    const groups = new Set(Array.from({ length: 400 }, () => docs.next().group));
    assert.equal(groups.size, DEFAULT_SHAPE.docs);
    const hot = makeWorkload('hot', 1);
    const rs = Array.from({ length: 2000 }, () => hot.next());
    const share = rs.filter((r) => r.group === 0).length / rs.length;
    assert.ok(Math.abs(share - DEFAULT_SHAPE.hotShare) < 0.05, String(share));
    assert.ok(rs.every((r) => r.key === `prefix-${r.group}`));
    const random = makeWorkload('random', 1);
    const firsts = new Set(Array.from({ length: 200 }, () => random.next().messages[0]!.content.slice(0, 30)));
    assert.ok(firsts.size > 190);
  });

  it('Poisson arrivals: seeded, in order, at the asked mean rate', () => {
    const a = poissonArrivals(50, 60_000, 9);
    assert.deepEqual(poissonArrivals(50, 60_000, 9), a);
    assert.ok(a.every((t, i) => t < 60_000 && (i === 0 || t >= a[i - 1]!)));
    assert.ok(Math.abs(a.length / 60 - 50) < 3, String(a.length));
  });
});

describe('bench:routing engine model', () => {
  it('scales every time of a profile and no capacity', () => {
    const p = scaleProfile({ ...ENGINE_PROFILES['h100-8b'], prefillStepMs: 1, decodeStepMs: 2 }, 4);
    assert.deepEqual(
      [p.stepMs, p.prefillMsPerToken, p.decodeMsPerSeq, p.prefillStepMs, p.decodeStepMs, p.kvBlocks, p.maxBatchedTokens],
      [20, 0.14, 0.16, 4, 8, 25_000, 8192],
    );
  });

  it('in virtual time, keeping each document on one engine hits the cache more than round robin', () => {
    const profile = { ...ENGINE_PROFILES['h100-8b'], kvBlocks: 1000, cacheBlocks: 1000 };
    const run = (routing: 'round-robin' | 'affinity') => simulate(makeWorkload('docs', 1, DEFAULT_SHAPE, answers), { profile, engines: 4, rate: 20, durationMs: 6000, warmMs: 2000, answers, seed: 1, routing });
    const rr = run('round-robin');
    const aff = run('affinity');
    assert.ok(rr.requests > 50 && aff.requests === rr.requests);
    assert.ok(aff.hitRate > rr.hitRate + 0.1, `${aff.hitRate} vs ${rr.hitRate}`);
    assert.ok(aff.meanTtftMs < rr.meanTtftMs);
  });
});

describe('bench:routing report', () => {
  it('p99 misses the SLO once more than n - ceil(0.99 n) requests exceed it', () => {
    assert.equal(allowedOverSlo(100), 1);
    assert.equal(allowedOverSlo(99), 0);
    assert.equal(allowedOverSlo(250), 2);
    assert.equal(allowedOverSlo(0), 0);
  });

  it("computes a point's figures from records and counter deltas", () => {
    const rec = (at: number, ttftMs?: number, endMs?: number, over: Partial<RequestRecord> = {}): RequestRecord => ({ at, measured: at >= 1000, sent: true, ttftMs, endMs, status: ttftMs === undefined ? 0 : 200, ...over });
    const records = [
      rec(500, 50, 300), // warm-up: not measured
      rec(1000, 100, 330),
      rec(1100, 200, 430),
      rec(1200, 300, 530),
      rec(1300), // still waiting at the end (3000): waited 1700
      rec(1400, undefined, undefined, { status: 500, error: 'status 500' }),
    ];
    const before = [{ requests: 10, prefixQueries: 1000, prefixHits: 100 }, { requests: 5, prefixQueries: 0, prefixHits: 0 }];
    const after = [{ requests: 13, prefixQueries: 2000, prefixHits: 900 }, { requests: 6, prefixQueries: 1000, prefixHits: 200 }];
    const p = pointResult(10, records, { cut: false, maxLagMs: 1, sloMs: 1000, maxTokens: 24, endMs: 3000, before, after, cpu });
    assert.equal(p.requests, 5);
    assert.equal(p.completed, 3);
    assert.equal(p.errors, 1);
    assert.equal(p.cutOff, 1);
    assert.equal(p.ttftLowerBound, true);
    // TTFTs 100, 200, 300 and 1700 (the error has none), nearest-rank p99 the largest
    assert.equal(p.ttftP99Ms, 1700);
    assert.equal(p.ttftMeanMs, (100 + 200 + 300 + 1700) / 4);
    assert.equal(p.itlMeanMs, 230 / 23);
    assert.equal(p.hitRate, 1000 / 2000);
    assert.deepEqual(p.loads, [3, 1]);
    assert.equal(p.loadMaxOverMean, 1.5);
    assert.equal(p.pass, false);
    const ok = pointResult(10, records.slice(0, 4), { cut: false, maxLagMs: 1, sloMs: 1000, maxTokens: 24, endMs: 3000, before, after, cpu });
    assert.equal(ok.pass, true);
    assert.equal(pointResult(10, records.slice(0, 4), { cut: true, maxLagMs: 1, sloMs: 1000, maxTokens: 24, endMs: 3000, before, after, cpu }).pass, false);
  });

  it('goodput is the highest sustained rate; checks are ratios within the run', () => {
    assert.equal(goodput([point(5, true), point(8, true), point(11, false), point(15, false)]), 8);
    assert.equal(goodput([point(5, false)]), 0);
    assert.equal(nearestRate([5, 8, 11, 15], 0.8 * 11), 8);
    assert.equal(nearestRate([5, 8], 0), undefined);
    const rates = [5, 8, 11, 15, 20];
    const shared = (name: string): WorkloadResult => ({
      name,
      describe: name,
      rates,
      runs: [
        policyRun('round-robin', [point(5, true), point(8, true), point(11, true, { ttftMeanMs: 400 }), point(15, false), point(20, false)]),
        policyRun('cache-aware', [point(5, true), point(8, true), point(11, true, { ttftMeanMs: 150 }), point(15, true), point(20, false)]),
        policyRun('cache-load', [point(5, true), point(8, true), point(11, true, { ttftMeanMs: 250 }), point(15, true), point(20, true)]),
      ],
    });
    const random: WorkloadResult = { name: 'random', describe: 'r', rates, runs: [policyRun('least-load', [point(5, true), point(8, true), point(11, false)]), policyRun('cache-aware', [point(5, true), point(8, false)]), policyRun('cache-load', [point(5, true), point(8, true)])] };
    const hot: WorkloadResult = {
      name: 'hot',
      describe: 'h',
      rates,
      runs: [policyRun('cache-aware', [point(5, true, { loadMaxOverMean: 2 }), point(8, false, { loadMaxOverMean: 3 })]), policyRun('cache-load', [point(5, true, { loadMaxOverMean: 1.2 }), point(8, true, { loadMaxOverMean: 1.4 }), point(11, false, { loadMaxOverMean: 2 })])],
    };
    assert.equal(worstLoad(hot.runs[1]!), 1.4);
    const checks = routingChecks([shared('chat'), shared('docs'), random, hot], 2);
    const value = (what: string) => checks.find((c) => c.what.startsWith(what));
    assert.equal(value("chat: best cache policy's goodput")!.value, 20 / 11);
    assert.equal(value("chat: best cache policy's goodput")!.pass, true);
    assert.equal(value("docs: best cache policy's mean TTFT")!.value, 150 / 400);
    // round robin sustained 11 and missed 15: capacity ~sqrt(11 x 15) = 12.8, 80% of it nearest 11
    assert.equal(capacityEstimate(shared('docs').runs[0]!), Math.sqrt(11 * 15));
    assert.equal(capacityEstimate(shared('docs').runs[2]!), 20);
    assert.match(value("docs: best cache policy's mean TTFT")!.what, / 11\.0 req\/s \(~0\.8 x round robin's capacity, 12\.8 req\/s\)/);
    assert.equal(value("random: cache-aware's goodput")!.pass, false);
    assert.equal(value("random: cache-load's goodput")!.pass, true);
    assert.equal(value('hot: cache-aware')!.value, 2);
    assert.equal(value('hot: cache-load')!.pass, true);
    assert.equal(value('errors')!.pass, true);
    assert.equal(value('CPU of every process')!.value, 0.15);
    const report: RoutingReport = { when: 'now', machine: { cpu: 'cpu', cores: 2, node: 'v20' }, settings: { backends: 4 }, method: ['m'], workloads: [shared('chat')], checks, durationS: 1, processes_left: [] };
    const md = routingMarkdown(report);
    assert.match(md, /\| chat \| cache-load \| 20\.0 \| 1\.82 \| 250 \| 50% \| 1\.00 \| 0 \|/);
    assert.match(md, /\| round-robin \| 15\.0 \| 100 \| 100 \| 200 \| 20\.0 \| 50% \| 1\.00 \| 0 \| 0\.30 \| missed \|/);
  });
});

describe('npm run bench:routing (smoke)', () => {
  it('runs --quick, stops everything it started and writes a well-formed report', { timeout: 120_000 }, async () => {
    const out = await tempDir('infini-routing-smoke-');
    const proc = spawn(process.execPath, [join(ROOT, 'dist', 'bench', 'routing.js'), '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((r) => proc.on('exit', r));
    assert.equal(code, 0, stderr);
    const report = JSON.parse(await readFile(join(out, 'routing-latest.json'), 'utf8')) as RoutingReport;
    assert.deepEqual(report.workloads.map((w) => w.name), ['chat']);
    const w = report.workloads[0]!;
    assert.deepEqual(w.runs.map((r) => r.policy), ['round-robin', 'cache-aware']);
    assert.equal(w.rates.length, 2);
    for (const r of w.runs) {
      assert.ok(r.points.length >= 1 && r.points.length <= 2);
      for (const p of r.points) {
        assert.ok(p.requests > 0 && p.completed > 0, JSON.stringify(p));
        assert.equal(p.loads.length, 4);
        assert.ok(p.hitRate >= 0 && p.hitRate <= 1, String(p.hitRate));
        assert.ok(p.ttftMeanMs > 0 && p.ttftP99Ms >= p.ttftMeanMs * 0.5 && p.itlMeanMs > 0, JSON.stringify(p));
        assert.ok(p.cpu.total > 0 && p.cpu.router > 0);
      }
    }
    assert.ok(report.checks.some((c) => c.what.startsWith('errors')));
    assert.ok(report.durationS < 60, String(report.durationS));
    assert.deepEqual(report.processes_left, []);
    assert.ok(report.processes_left.every((pid) => !alive(pid)));
    const md = await readFile(join(out, 'routing-latest.md'), 'utf8');
    assert.equal(md, routingMarkdown(report));
    assert.match(md, /\| chat \| cache-aware \|/);
  });
});
