import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { alive } from '../bench/processes.js';
import { address, registration, spreadModels } from '../bench/scale-fleet.js';
import { classify, FIGURES, growth, medianPerOp, scaleMarkdown, summarise, type ScaleReport, type SizeResult } from '../bench/scale-report.js';
import { ROOT, tempDir } from './helpers/services.js';

describe('bench:scale computations', () => {
  it('gives every service its own loopback address and every model ten backends', () => {
    const seen = new Set(Array.from({ length: 70_000 }, (_, i) => address(i)));
    assert.equal(seen.size, 70_000);
    for (const a of [address(0), address(64_515), address(64_516), address(69_999)]) assert.match(a, /^127\.(1[6-9])\.([1-9]\d?|1\d\d|2[0-4]\d|25[0-4])\.([1-9]\d?|1\d\d|2[0-4]\d|25[0-4])$/);
    assert.deepEqual(registration(13, [5000, 6000]).metadata, { type: 'openai-api', models: ['m1'] });
    assert.equal(registration(13, [5000, 6000]).port, 6000);
    assert.deepEqual(spreadModels(10_000, 10), ['m0', 'm100', 'm200', 'm300', 'm400', 'm500', 'm600', 'm700', 'm800', 'm900']);
    assert.deepEqual(spreadModels(30, 10), ['m0', 'm1', 'm2']);
  });

  it('classifies growth between sizes as flat, linear or super-linear', () => {
    assert.equal(classify(1.5, 1000, 10_000), 'flat');
    assert.equal(classify(0.5, 1000, 10_000), 'flat');
    assert.equal(classify(10, 1000, 10_000), 'linear');
    assert.equal(classify(5, 10_000, 50_000), 'linear');
    assert.equal(classify(100, 1000, 10_000), 'super-linear');
    const size = (n: number, ms: number): SizeResult => ({ n, phases_s: {}, registry: null, router: { listed_s: ms } as SizeResult['router'], fake_backends_cpu_s: {}, notes: [] });
    const g = growth([size(10_000, 4), size(1000, 1), size(50_000, 80)], FIGURES.filter((f) => f.key === 'router_listed_s'));
    assert.deepEqual(g, [
      { figure: 'router_listed_s', from: 1000, to: 10_000, ratio: 4, class: 'linear' },
      { figure: 'router_listed_s', from: 10_000, to: 50_000, ratio: 20, class: 'super-linear' },
    ]);
  });

  it('takes the median per-second cost, leaving a busy second out', () => {
    const cpu = new Map([[1, 1_000_000], [2, 1_100_000], [3, 90_000_000], [4, 5_000]]);
    const ops = new Map([[1, 10], [2, 10], [3, 10], [4, 0]]);
    assert.equal(medianPerOp(cpu, ops), 110);
    assert.equal(medianPerOp(new Map(), ops), null);
    assert.deepEqual(summarise([3, 1, 2, NaN]), { count: 3, p50_ms: 2, p99_ms: 3, max_ms: 3 });
  });
});

describe('npm run bench:scale (smoke)', () => {
  it('runs small fleets, stops by itself and writes a report of the right shape', { timeout: 90_000 }, async () => {
    const out = await tempDir('infini-scale-smoke-');
    const proc = spawn(process.execPath, [join(ROOT, 'dist', 'bench', 'scale.js'), '--quick', '--out', out, '--state-dir', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((r) => proc.on('exit', r));
    assert.equal(code, 0, stderr);
    const report = JSON.parse(await readFile(join(out, 'scale-latest.json'), 'utf8')) as ScaleReport;
    assert.deepEqual(report.sizes.map((s) => s.n), [100, 300]);
    for (const s of report.sizes) {
      const r = s.registry!;
      assert.equal(r.registrations.ok, s.n, JSON.stringify(r.registrations));
      assert.ok(r.heartbeats.sent >= s.n * 0.3 && r.heartbeats.count > 0, JSON.stringify(r.heartbeats));
      assert.ok(r.services_get.count > 0 && r.stalls.all.count > 10);
      assert.ok(r.disk.final_state_mb! > 0 && r.rss_mb.peak! > 0 && r.fds.peak! > 0);
      assert.ok(r.churn.sent > 0);
      const router = s.router!;
      assert.equal(router.listed, s.n);
      assert.ok(router.requests.count > 50 && router.baseline_requests.count > 50, JSON.stringify(router));
      assert.ok(router.gross_cpu_us_per_request! > 0 && router.baseline_gross_cpu_us_per_request! > 0);
      for (const phase of ['registry start', 'burst', 'heartbeats', 'router listing', 'router stream', 'total']) assert.ok(s.phases_s[phase]! >= 0, phase);
    }
    assert.ok(report.growth.length > 10);
    for (const g of report.growth) assert.ok(['flat', 'linear', 'super-linear'].includes(g.class) && g.from === 100 && g.to === 300);
    assert.ok('skipped' in report.routing);
    assert.ok(report.checks.length >= 14);
    // every target names 10k or 50k: none measured at these sizes
    assert.ok(report.checks.every((c) => c.pass === undefined), JSON.stringify(report.checks));
    assert.deepEqual(report.processes_left, []);
    assert.ok(report.processes_left.every((pid) => !alive(pid)));
    const md = await readFile(join(out, 'scale-latest.md'), 'utf8');
    assert.equal(md, scaleMarkdown(report));
    assert.match(md, /\| figure \| N = 100 \| N = 300 \| 300 \/ 100 \|/);
  });
});
