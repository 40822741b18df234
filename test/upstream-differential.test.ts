/**
 * Differential test of the router's upstream response parser (src/router/upstream/response-parser.ts)
 * against llhttp, node:http's client parser with its default strict options (issue 13). What we
 * would relay (status, headers, body, complete) llhttp must read the same way, and we may reuse a
 * connection only where llhttp would; refusing (502) where llhttp accepts is listed, not failed.
 * Deliberate differences are named in http1-differential-allowlist.ts. HTTP1_DIFF_REPORT=<file>
 * also writes every case that is not an agreement to that file; HTTP1_DIFF_SEED=<n> runs other
 * mutations.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { after, before, describe, it } from './helpers/test.js';
import { parseWithOurs, RawResponder, type ResponseOutcome } from './helpers/response-differential.js';
import { compareResponses, describeResponse, describeResponseCase, responseCause, type ResponseComparison } from './helpers/response-verdict.js';
import { boundedMap } from './helpers/bounded-map.js';
import { escapeBytes, toBytes } from './helpers/bytes-text.js';
import { Mutator } from './helpers/seeded-mutations.js';
import { RESPONSE_CASES, RESPONSE_MUTATION_SOURCES } from './upstream-response-corpus.js';
import { ALLOWED_RESPONSE_DIFFERENCES } from './http1-differential-allowlist.js';

const SLOTS = [0, 1, 2, 3, 4, 5];
/** HTTP1_DIFF_SEED=<n> explores other mutations; the test's own seed stays fixed. */
const SEED = Number(process.env.HTTP1_DIFF_SEED ?? 13);
const GENERATED = 3000;
const GENERATOR_BUDGET_MS = 5000;

interface Result {
  name: string;
  bytes: string;
  ours: ResponseOutcome;
  llhttp: ResponseOutcome;
  comparison: ResponseComparison;
  allowedBy: string | undefined;
}

function judge(name: string, bytes: string, ours: ResponseOutcome, llhttp: ResponseOutcome): Result {
  const comparison = compareResponses(ours, llhttp);
  const allowed = comparison.verdict === 'ours-lenient' ? ALLOWED_RESPONSE_DIFFERENCES.find((a) => a.matches(bytes, ours, llhttp)) : undefined;
  return { name, bytes, ours, llhttp, comparison, allowedBy: allowed?.name };
}

const failing = (results: Result[]): Result[] => results.filter((r) => r.comparison.verdict === 'ours-lenient' && r.allowedBy === undefined);
const describe1 = (r: Result): string => describeResponseCase(r.name, r.bytes, r.ours, r.llhttp, r.comparison);

function writeReport(title: string, results: Result[]): void {
  const file = process.env.HTTP1_DIFF_REPORT;
  if (!file) return;
  const lines = [`## ${title}`];
  for (const verdict of ['ours-lenient', 'ours-stricter'] as const) {
    const some = results.filter((r) => r.comparison.verdict === verdict);
    lines.push(`### ${verdict} (${some.length})`, ...some.map(describe1));
  }
  appendFileSync(file, `${lines.join('\n')}\n\n`);
}

function groups(results: Result[]): string {
  const byKey = new Map<string, Result[]>();
  for (const r of results) {
    const key = `${r.comparison.verdict}: ${responseCause(r.ours, r.llhttp, r.comparison)}`;
    byKey.set(key, [...(byKey.get(key) ?? []), r]);
  }
  return [...byKey.entries()]
    .sort((a, b) => b[1].length - a[1].length)
    .map(([key, list]) => `${list.length} x ${key}\n${describe1(list[0]!)}`)
    .join('\n');
}

describe('upstream response parsing against llhttp', () => {
  const responder = new RawResponder();
  before(() => responder.start());
  after(() => responder.stop());

  const run = async (name: string, bytes: string, method: 'GET' | 'HEAD' = 'GET'): Promise<Result> => {
    const ours = parseWithOurs([toBytes(bytes)], method === 'HEAD');
    const llhttp = await responder.parseWithLlhttp(toBytes(bytes), method);
    return judge(name, bytes, ours, llhttp);
  };

  it('named cases: what we relay, llhttp reads the same way', async (t) => {
    const results = await boundedMap(SLOTS, RESPONSE_CASES, (_, c) => run(c.name, c.bytes, c.method));
    assert.equal(results.length, RESPONSE_CASES.length);
    writeReport('named response cases', results);
    const count = (v: string) => results.filter((r) => r.comparison.verdict === v).length;
    t.diagnostic(`${results.length} cases: ${count('agree')} agree, ${count('ours-stricter')} ours stricter, ${count('ours-lenient')} ours more lenient`);
    for (const r of results) if (r.comparison.verdict === 'ours-stricter') t.diagnostic(`ours-stricter: ${r.name}: ${r.comparison.why}`);
    for (const r of results) if (r.allowedBy) t.diagnostic(`allowed (${r.allowedBy}): ${r.name}`);
    const bad = failing(results);
    assert.equal(bad.length, 0, `we relay what llhttp does not read that way (${bad.length} of ${results.length} cases):\n${bad.map(describe1).join('\n')}`);
  });

  it('named cases in every two-read split and byte by byte: our result does not depend on where reads end', () => {
    const differ: string[] = [];
    for (const c of RESPONSE_CASES) {
      const bytes = toBytes(c.bytes);
      // which check catches a bad byte may depend on the reads (both are a 502): compare without the message
      const text = (o: ResponseOutcome): string => describeResponse(o.end.kind === 'error' ? { ...o, end: { kind: 'error', detail: '' } } : o);
      const whole = text(parseWithOurs([bytes], c.method === 'HEAD'));
      const splits = Array.from({ length: bytes.length - 1 }, (_, i) => [bytes.subarray(0, i + 1), bytes.subarray(i + 1)]);
      splits.push(Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)));
      for (const parts of splits) {
        const got = text(parseWithOurs(parts, c.method === 'HEAD'));
        if (got !== whole) differ.push(`  ${c.name} in ${parts.length} reads (first ${escapeBytes(parts[0]!.toString('latin1'), 80)}):\n    one read:\n${whole}\n    split:\n${got}`);
      }
    }
    assert.equal(differ.length, 0, `${differ.length} split runs differ from one read:\n${differ.slice(0, 20).join('\n')}`);
  });

  it(`seeded mutations (seed ${SEED}, ${GENERATED} cases): what we relay, llhttp reads the same way`, { timeout: 60_000 }, async (t) => {
    const mutator = new Mutator(SEED);
    const seen = new Set<string>();
    const cases: Array<{ name: string; bytes: string }> = [];
    for (let i = 0; cases.length < GENERATED && i < GENERATED * 4; i++) {
      const m = mutator.next(RESPONSE_MUTATION_SOURCES);
      if (seen.has(m.bytes)) continue;
      seen.add(m.bytes);
      cases.push({ name: `#${cases.length} ${m.name}`, bytes: m.bytes });
    }
    const started = Date.now();
    const results = await boundedMap(SLOTS, cases, (_, c) => run(c.name, c.bytes), started + GENERATOR_BUDGET_MS);
    writeReport(`seeded response mutations (seed ${SEED})`, results);
    const count = (v: string) => results.filter((r) => r.comparison.verdict === v).length;
    t.diagnostic(`${results.length} of ${cases.length} generated cases in ${Date.now() - started} ms: ${count('agree')} agree, ${count('ours-stricter')} ours stricter, ${count('ours-lenient')} ours more lenient`);
    for (const line of groups(results.filter((r) => r.comparison.verdict !== 'agree')).split('\n').filter((l) => /^\d+ x /.test(l))) t.diagnostic(line);
    const bad = failing(results);
    assert.equal(bad.length, 0, `we relay what llhttp does not read that way (${bad.length} of ${results.length} generated cases), by kind:\n${groups(bad)}`);
  });
});
