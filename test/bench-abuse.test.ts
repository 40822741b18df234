import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { measurement, toMarkdown, type AbuseReport, type Outcome } from '../bench/abuse-report.js';
import { largeHead } from '../bench/abuse-patterns.js';
import { alive } from '../bench/processes.js';
import { ROOT, tempDir } from './helpers/services.js';

const OUTCOMES: Outcome[] = ['ok', 'exceeded the RSS cap', 'crashed', 'timed out', 'ended the connection'];

describe('abuse benchmark report computation', () => {
  it('puts router over node:http for the figures marked as ratios, and nothing where a side is missing', () => {
    const m = measurement(
      'x',
      'x',
      [
        { key: 'a', label: 'a', digits: 1, ratio: true },
        { key: 'b', label: 'b', digits: 1, ratio: true },
        { key: 'c', label: 'c', digits: 1 },
      ],
      {
        router: { outcome: 'ok', figures: { a: 30, b: 5, c: 1 } },
        'node:http': { outcome: 'exceeded the RSS cap', figures: { a: 10, b: undefined, c: 2 } },
      },
    );
    assert.deepEqual(m.ratios, { a: 3, b: undefined });
  });

  it('shows an outcome other than ok where a figure is missing', () => {
    const report: AbuseReport = {
      when: 'now',
      machine: { cpu: 'cpu', cores: 2, memoryGb: 1, node: 'v20', kernel: '6' },
      targets: [
        { name: 'router', started: 'r' },
        { name: 'node:http', started: 'n' },
      ],
      method: [],
      settings: { n: 1 },
      measurements: [
        measurement('m', 'title', [{ key: 'a', label: 'A', digits: 1, ratio: true }, { key: 'yes', label: 'Y', digits: 0 }], {
          router: { outcome: 'exceeded the RSS cap', figures: { a: undefined, yes: true } },
          'node:http': { outcome: 'ok', figures: { a: 1234.5, yes: false } },
        }),
      ],
    };
    const md = toMarkdown(report);
    assert.match(md, /\| title \| A \| exceeded the RSS cap \| 1,234\.5 \| - \|/);
    assert.match(md, /\|  \| Y \| yes \| no \|  \|/);
    assert.match(md, /- title, router: exceeded the RSS cap\./);
  });

  it('builds a head of the asked size out of 64-byte header lines', () => {
    const { head, headers } = largeHead(4000);
    assert.ok(head.length <= 4000 && head.length > 4000 - 64, String(head.length));
    assert.ok(head.toString('latin1').startsWith('GET /health HTTP/1.1\r\nHost: bench\r\n'));
    assert.ok(head.toString('latin1').endsWith('\r\n\r\n'));
    assert.equal(head.toString('latin1').split('\r\n').length - 3, headers);
  });
});

describe('npm run bench:abuse (smoke)', () => {
  it('runs with tiny sizes, writes a well-formed report and leaves no process behind', { timeout: 120_000 }, async () => {
    const out = await tempDir('infini-abuse-smoke-');
    const proc = spawn(process.execPath, [join(ROOT, 'dist', 'bench', 'abuse.js'), '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    proc.stderr.on('data', (d) => (stderr += d));
    proc.stdout.on('data', (d) => (stdout += d));
    const code = await new Promise((r) => proc.on('exit', r));
    assert.equal(code, 0, stderr);

    const report = JSON.parse(await readFile(join(out, 'abuse-latest.json'), 'utf8')) as AbuseReport;
    assert.deepEqual(
      report.measurements.map((m) => m.id),
      ['chunked-20000', 'chunk-bomb', 'pipelining', 'head-byte-at-a-time', 'small-request', 'head-in-requests'],
    );
    assert.deepEqual(report.targets.map((t) => t.name), ['router', 'node:http']);
    assert.ok(Number(report.machine.cores) > 0 && typeof report.machine.node === 'string');
    for (const m of report.measurements) {
      assert.deepEqual(Object.keys(m.targets).sort(), ['node:http', 'router'], m.id);
      for (const [name, t] of Object.entries(m.targets)) {
        assert.ok(OUTCOMES.includes(t.outcome), `${m.id} ${name}: ${t.outcome}`);
        // tiny sizes stay far below the RSS cap: every measurement completes
        assert.equal(t.outcome, 'ok', `${m.id} ${name}: ${t.outcome} ${t.note ?? ''}`);
        for (const f of m.figures) {
          const v = t.figures[f.key];
          assert.ok(typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)), `${m.id} ${name} ${f.key}: ${v}`);
        }
      }
      const ratioKeys = m.figures.filter((f) => f.ratio).map((f) => f.key);
      for (const [k, v] of Object.entries(m.ratios)) {
        assert.ok(ratioKeys.includes(k), `${m.id}: ratio of ${k}`);
        assert.ok(typeof v === 'number' && Number.isFinite(v), `${m.id}: ratio ${k} ${v}`);
      }
    }
    // the large head was accepted by both and reached them about a byte per read
    const head = report.measurements.find((m) => m.id === 'head-byte-at-a-time')!;
    for (const t of Object.values(head.targets)) {
      assert.equal(t.figures.status, 200);
      assert.ok((t.figures.reads as number) > 1000, String(t.figures.reads));
    }

    const md = await readFile(join(out, 'abuse-latest.md'), 'utf8');
    assert.equal(md, toMarkdown(report));
    assert.equal(stdout, md);
    assert.match(md, /\| measurement \| figure \| router \| node:http \| router\/node:http \|/);

    const pids = [...stderr.matchAll(/abuse: started .+ pid (\d+)/g)].map((m) => Number(m[1]));
    assert.ok(pids.length >= 5, stderr);
    assert.deepEqual(pids.filter(alive), []);
  });
});
