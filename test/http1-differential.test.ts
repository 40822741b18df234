/**
 * Differential test of our HTTP/1.1 request parsing (src/common/http1/) against llhttp, node:http's
 * parser with its default strict options (issue 13). Every request our server accepts, llhttp must
 * accept with the same framing; where we are stricter, the case is listed, not failed; deliberate
 * differences are named in http1-differential-allowlist.ts. Set HTTP1_DIFF_REPORT=<file> to also
 * write the full report (every case that is not an agreement) to a file, HTTP1_DIFF_SEED=<n> to run
 * other mutations, HTTP1_DIFF_SPLIT=all to split the small cases at every byte.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { after, before, describe, it } from './helpers/test.js';
import { LanePool, type Outcome } from './helpers/request-differential.js';
import { compare, describeCase, describeOutcome, FAILING, groupKey, type Comparison } from './helpers/request-verdict.js';
import { toBytes, escapeBytes } from './helpers/bytes-text.js';
import { Mutator } from './helpers/seeded-mutations.js';
import { MUTATION_SOURCES, REQUEST_CASES } from './http1-request-corpus.js';
import { ALLOWED_REQUEST_DIFFERENCES } from './http1-differential-allowlist.js';

/** The same limits on both sides, so that size cases compare parsing and not configuration. */
const LIMITS = { maxHeadBytes: 16 * 1024, maxBodyBytes: 1024 * 1024 };
const LANES = 6;
/** HTTP1_DIFF_SEED=<n> explores other mutations; the test's own seed stays fixed. */
const SEED = Number(process.env.HTTP1_DIFF_SEED ?? 13);
const GENERATED = 3000;
/** The generator stops early past this, and says how far it got. */
const GENERATOR_BUDGET_MS = 8000;
/** Cases up to this size are also sent in two writes, split at every byte near a line end (to our server). */
const SPLIT_MAX_BYTES = 160;

/**
 * Split points within two bytes of a CR or LF: where incremental parsers keep state (and break).
 * Every byte costs about three times as long over loopback; HTTP1_DIFF_SPLIT=all runs that.
 */
function splitPoints(bytes: string): number[] {
  const every = process.env.HTTP1_DIFF_SPLIT === 'all';
  const near = (i: number) => i >= 0 && i < bytes.length && (bytes[i] === '\r' || bytes[i] === '\n');
  const points: number[] = [];
  for (let at = 1; at < bytes.length; at++) if (every || near(at - 2) || near(at - 1) || near(at) || near(at + 1)) points.push(at);
  return points;
}

interface Result {
  name: string;
  bytes: string;
  ours: Outcome;
  llhttp: Outcome;
  comparison: Comparison;
  allowedBy: string | undefined;
}

const joined = (bytes: string | string[]): string => (Array.isArray(bytes) ? bytes.join('') : bytes);

/** An outcome as text without the refusal's message: which check caught a bad byte may depend on the reads, the status may not. */
const withoutMessage = (o: Outcome): string => describeOutcome(o.end.kind === 'refused' ? { ...o, end: { ...o.end, detail: '' } } : o);

function judge(name: string, bytes: string, ours: Outcome, llhttp: Outcome): Result {
  const comparison = compare(ours, llhttp);
  const allowed = FAILING.includes(comparison.verdict) ? ALLOWED_REQUEST_DIFFERENCES.find((a) => a.matches(bytes, ours, llhttp)) : undefined;
  return { name, bytes, ours, llhttp, comparison, allowedBy: allowed?.name };
}

const failing = (results: Result[]): Result[] => results.filter((r) => FAILING.includes(r.comparison.verdict) && r.allowedBy === undefined);

function writeReport(title: string, results: Result[]): void {
  const file = process.env.HTTP1_DIFF_REPORT;
  if (!file) return;
  const lines = [`## ${title}`];
  for (const verdict of ['ours-lenient', 'ours-reads-on', 'ours-stricter'] as const) {
    const some = results.filter((r) => r.comparison.verdict === verdict);
    lines.push(`### ${verdict} (${some.length})`);
    for (const r of some) lines.push(describeCase(r.name + (r.allowedBy ? ` [allowed: ${r.allowedBy}]` : ''), r.bytes, r.ours, r.llhttp, r.comparison));
  }
  appendFileSync(file, `${lines.join('\n')}\n\n`);
}

/** Counts per group with one example each, for the generated cases. */
function groups(results: Result[]): string {
  const byKey = new Map<string, Result[]>();
  for (const r of results) {
    if (r.comparison.verdict === 'agree') continue;
    const key = groupKey(r.ours, r.llhttp, r.comparison);
    byKey.set(key, [...(byKey.get(key) ?? []), r]);
  }
  return [...byKey.entries()]
    .sort((a, b) => b[1].length - a[1].length)
    .map(([key, list]) => `${list.length} x ${key}\n${describeCase(list[0]!.name, list[0]!.bytes, list[0]!.ours, list[0]!.llhttp, list[0]!.comparison)}`)
    .join('\n');
}

describe('http1 request parsing against llhttp', () => {
  const pool = new LanePool(LANES, LIMITS);
  before(() => pool.start());
  after(() => pool.stop());

  it('named cases: every request we accept, llhttp accepts with the same framing', async (t) => {
    const results = await pool.map(REQUEST_CASES, async (lane, c) => {
      const parts = (Array.isArray(c.bytes) ? c.bytes : [c.bytes]).map(toBytes);
      const { ours, llhttp } = await lane.both(parts);
      return judge(c.name, joined(c.bytes), ours, llhttp);
    });
    assert.equal(results.length, REQUEST_CASES.length);
    writeReport('named request cases', results);
    const count = (v: string) => results.filter((r) => r.comparison.verdict === v).length;
    t.diagnostic(`${results.length} cases: ${count('agree')} agree, ${count('ours-stricter')} ours stricter, ${count('ours-lenient')} ours more lenient, ${count('ours-reads-on')} ours reads on where llhttp refused`);
    for (const r of results) if (r.comparison.verdict === 'ours-stricter') t.diagnostic(`${r.comparison.verdict}: ${r.name}: ${r.comparison.why}`);
    for (const r of results) if (r.allowedBy) t.diagnostic(`allowed (${r.allowedBy}): ${r.name}`);
    const bad = failing(results);
    assert.equal(bad.length, 0, `ours accepts what llhttp does not (${bad.length} of ${results.length} cases):\n${bad.map((r) => describeCase(r.name, r.bytes, r.ours, r.llhttp, r.comparison)).join('\n')}`);
  });

  it('named cases split around every line end: our result does not depend on where reads end', async (t) => {
    const small = REQUEST_CASES.filter((c) => joined(c.bytes).length <= SPLIT_MAX_BYTES);
    const runs = small.flatMap((c) => {
      const bytes = joined(c.bytes);
      return [...splitPoints(bytes), bytes.length].map((at) => ({ c, bytes, at }));
    });
    t.diagnostic(`${small.length} cases, ${runs.length - small.length} split runs`);
    // at === length is the single write, the reference for the splits of that case
    const outcomes = await pool.map(runs, (lane, run) => lane.oursOnly(run.at === run.bytes.length ? [toBytes(run.bytes)] : [toBytes(run.bytes.slice(0, run.at)), toBytes(run.bytes.slice(run.at))]));
    assert.equal(outcomes.length, runs.length);
    const reference = new Map<string, string>();
    runs.forEach((run, i) => {
      if (run.at === run.bytes.length) reference.set(run.c.name, withoutMessage(outcomes[i]!));
    });
    const differ: string[] = [];
    runs.forEach((run, i) => {
      const got = withoutMessage(outcomes[i]!);
      if (got !== reference.get(run.c.name)) differ.push(`  ${run.c.name} split at ${run.at}: ${escapeBytes(run.bytes.slice(0, run.at), 80)} | ${escapeBytes(run.bytes.slice(run.at), 80)}\n    one write:\n${reference.get(run.c.name)}\n    split:\n${got}`);
    });
    assert.equal(differ.length, 0, `${differ.length} of ${runs.length} split runs differ from one write:\n${differ.slice(0, 20).join('\n')}`);
  });

  it(`seeded mutations (seed ${SEED}, ${GENERATED} cases): every request we accept, llhttp accepts the same`, { timeout: 60_000 }, async (t) => {
    const mutator = new Mutator(SEED);
    const seen = new Set<string>();
    const cases: Array<{ name: string; bytes: string }> = [];
    for (let i = 0; cases.length < GENERATED && i < GENERATED * 4; i++) {
      const m = mutator.next(MUTATION_SOURCES);
      if (seen.has(m.bytes)) continue;
      seen.add(m.bytes);
      cases.push({ name: `#${cases.length} ${m.name}`, bytes: m.bytes });
    }
    const started = Date.now();
    const results = await pool.map(cases, async (lane, c) => {
      const { ours, llhttp } = await lane.both([toBytes(c.bytes)]);
      return judge(c.name, c.bytes, ours, llhttp);
    }, started + GENERATOR_BUDGET_MS);
    writeReport(`seeded mutations (seed ${SEED})`, results);
    const count = (v: string) => results.filter((r) => r.comparison.verdict === v).length;
    t.diagnostic(`${results.length} of ${cases.length} generated cases in ${Date.now() - started} ms: ${count('agree')} agree, ${count('ours-stricter')} ours stricter, ${count('ours-lenient')} ours more lenient, ${count('ours-reads-on')} ours reads on`);
    for (const line of groups(results.filter((r) => r.comparison.verdict === 'ours-stricter')).split('\n').filter((l) => /^\d+ x /.test(l))) t.diagnostic(line);
    const bad = failing(results);
    assert.equal(bad.length, 0, `ours accepts what llhttp does not (${bad.length} of ${results.length} generated cases), by kind:\n${groups(bad)}`);
  });
});
