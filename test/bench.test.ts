import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { parseDuration, parseWrk } from '../bench/load.js';
import { check, combineRounds, median, percentile, ratio, toMarkdown, type BenchReport } from '../bench/report.js';
import { ROOT, tempDir } from './helpers/services.js';

describe('benchmark report computation', () => {
  it('computes nearest-rank percentiles and medians', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(xs, 50), 50);
    assert.equal(percentile(xs, 99), 99);
    assert.equal(percentile(xs, 100), 100);
    assert.equal(percentile([7], 99), 7);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([NaN, 5]), 5);
  });

  it('combines rounds by median and sums errors', () => {
    const c = combineRounds([
      { rps: 100, p50Ms: 1, p99Ms: 5, errors: 0, requests: 300, cpuPerReqUs: 50 },
      { rps: 300, p50Ms: 3, p99Ms: 9, errors: 2, requests: 900, cpuPerReqUs: 70 },
      { rps: 200, p50Ms: 2, p99Ms: 7, errors: 1, requests: 600 },
    ]);
    assert.deepEqual(c, { rps: 200, p50Ms: 2, p99Ms: 7, errors: 3, requests: 1800, cpuPerReqUs: 60 });
  });

  it('computes ratios and checks, leaving unmeasured ones open', () => {
    assert.equal(ratio(45, 100), 0.45);
    assert.equal(ratio(1, 0), undefined);
    assert.equal(ratio(undefined, 3), undefined);
    assert.deepEqual(check('x', 0.5, '>=', 0.45, 'x'), { what: 'x', value: 0.5, target: '>= 0.45x', pass: true });
    assert.equal(check('y', 5, '<=', 4).pass, false);
    assert.equal(check('z', undefined, '<=', 4).pass, undefined);
  });

  it('parses wrk output', () => {
    const out = `Running 3s test @ http://127.0.0.1:1/
  1 threads and 64 connections
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
  30000 requests in 3.00s, 10.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  10000.50
`;
    assert.deepEqual(parseWrk(out), { rps: 10000.5, p50Ms: 0.812, p99Ms: 1500, errors: 7, requests: 30000 });
    assert.equal(parseDuration('2m'), 120_000);
  });
});

describe('npm run bench (smoke)', () => {
  it('runs for about a second against the mock and writes a well-formed report', async () => {
    const out = await tempDir('infini-bench-smoke-');
    const proc = spawn(process.execPath, [join(ROOT, 'dist', 'bench', 'run.js'), '--duration', '0.5', '--rounds', '1', '--connections', '4', '--streams', '20', '--idle-conns', '20', '--loadgen', 'node', '--no-nginx', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((r) => proc.on('exit', r));
    assert.equal(code, 0, stderr);
    const report = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8')) as BenchReport;
    assert.equal(report.scenarios.length, 3);
    for (const s of report.scenarios) {
      // the router over TLS too: certificates made with openssl (.ci/run installs it)
      assert.deepEqual(Object.keys(s.targets).sort(), ['direct', 'router', 'router tls', 'router x2']);
      for (const t of Object.values(s.targets)) {
        assert.ok(t.rps > 0 && t.requests > 0, JSON.stringify(t));
        assert.equal(t.errors, 0);
        assert.ok(t.p50Ms > 0 && t.p99Ms >= t.p50Ms);
      }
    }
    assert.ok(report.memoryMb.idle! > 0);
    assert.ok(report.checks.length >= 6);
    assert.equal(report.checks.find((c) => c.what.startsWith('errors'))!.pass, true);
    const md = await readFile(join(out, 'latest.md'), 'utf8');
    assert.equal(md, toMarkdown(report));
    assert.match(md, /\| scenario \| target \| req\/s/);
  });
});
