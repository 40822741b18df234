/** Pure logic of the router's traffic counters: buckets, quantiles, label bounds, the usage scan. */
import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { BackendTraffic, bucketQuantile, Histogram, LATENCY_BUCKETS, OTHER_MODEL, routeIndex, ROUTES, statusClassIndex, STATUS_CLASSES, TrafficStats } from '../src/router/traffic-stats.js';
import { completionTokens } from '../src/router/usage-scan.js';

describe('traffic histograms', () => {
  it('puts a value equal to a bound in that bound\'s bucket (Prometheus `le`), larger ones above', () => {
    const h = new Histogram([0.1, 1, 10]);
    for (const v of [0, 0.1, 0.10001, 1, 5, 10, 11]) h.observe(v);
    assert.deepEqual([...h.counts], [2, 2, 2, 1]);
    assert.equal(h.count, 7);
    assert.ok(Math.abs(h.sum - 27.20001) < 1e-9);
  });

  it('estimates quantiles as histogram_quantile does: linear inside the bucket, the top bucket answers its lower bound', () => {
    const bounds = [1, 2, 4];
    assert.equal(bucketQuantile(bounds, [0, 0, 0, 0], 0.5), undefined);
    assert.equal(bucketQuantile(bounds, [10, 0, 0, 0], 0.5), 0.5);
    assert.equal(bucketQuantile(bounds, [0, 10, 0, 0], 0.5), 1.5);
    assert.equal(bucketQuantile(bounds, [5, 0, 5, 0], 0.99), 2 + 2 * ((9.9 - 5) / 5));
    assert.equal(bucketQuantile(bounds, [0, 0, 0, 3], 0.5), 4);
  });

  it('has 20 latency bounds from milliseconds to minutes, increasing', () => {
    assert.equal(LATENCY_BUCKETS.length, 20);
    for (let i = 1; i < LATENCY_BUCKETS.length; i++) assert.ok(LATENCY_BUCKETS[i]! > LATENCY_BUCKETS[i - 1]!);
    assert.ok(LATENCY_BUCKETS[0]! <= 0.005 && LATENCY_BUCKETS.at(-1)! >= 300);
  });
});

describe('traffic labels', () => {
  it('names the OpenAI routes and puts everything else under other', () => {
    assert.equal(ROUTES[routeIndex('/v1/chat/completions')], '/v1/chat/completions');
    assert.equal(ROUTES[routeIndex('/v1/completions?x=1')], '/v1/completions');
    assert.equal(ROUTES[routeIndex('/v1/embeddings')], '/v1/embeddings');
    assert.equal(ROUTES[routeIndex('/v1/anything/else')], 'other');
    assert.equal(ROUTES[routeIndex('/v1/chat/completions/')], 'other');
  });

  it('classes statuses, and none for no status', () => {
    assert.equal(STATUS_CLASSES[statusClassIndex(200)], '2xx');
    assert.equal(STATUS_CLASSES[statusClassIndex(503)], '5xx');
    assert.equal(STATUS_CLASSES[statusClassIndex(0)], 'none');
    assert.equal(STATUS_CLASSES[statusClassIndex(999)], 'none');
  });

  it('keeps at most 64 model labels per backend; further names share `other`', () => {
    const t = new BackendTraffic('b');
    for (let i = 0; i < 64; i++) t.cell(`model-${i}`).countRequest(0, 200);
    const extra = t.cell('one-too-many');
    assert.equal(extra.model, OTHER_MODEL);
    assert.equal(t.cell('yet-another'), extra);
    assert.equal([...t.distinctCells()].length, 65);
    // a flood of random names cannot grow the map without bound
    for (let i = 0; i < 10_000; i++) t.cell(`random-${i}`);
    assert.ok(t.cells.size <= 64 * 4);
  });

  it('forgets a backend 10 minutes after it left, and keeps counting for one that came back', () => {
    const stats = new TrafficStats();
    const gone = stats.forBackend('gone');
    gone.retries = 3;
    stats.forBackend('back').retries = 1;
    stats.backendGone('gone', 0);
    stats.backendGone('back', 0);
    assert.equal(stats.forBackend('back').retries, 1, 'same counters on return');
    stats.forgetGone(9 * 60_000);
    assert.ok(stats.backends.has('gone'));
    stats.forgetGone(11 * 60_000);
    assert.ok(!stats.backends.has('gone'));
    assert.ok(stats.backends.has('back'));
  });
});

describe('usage scan', () => {
  const scan = (text: string, start = 0, end?: number) => {
    const buf = Buffer.from(text, 'latin1');
    return completionTokens(buf, start, end ?? buf.length);
  };

  it('reads completion_tokens in compact and spaced JSON', () => {
    assert.equal(scan('{"usage":{"prompt_tokens":5,"completion_tokens":17,"total_tokens":22}}'), 17);
    assert.equal(scan('{"usage": {"prompt_tokens": 5, "completion_tokens": 17, "total_tokens": 22}}'), 17);
    assert.equal(scan('data: {"choices":[],"usage":{"completion_tokens" :\n 3}}\n\n'), 3);
  });

  it('ignores completion_tokens_details and takes the last count (engines that report running totals)', () => {
    assert.equal(scan('{"completion_tokens_details":{"reasoning_tokens":2},"completion_tokens":9}'), 9);
    assert.equal(scan('data: {"usage":{"completion_tokens":1}}\n\ndata: {"usage":{"completion_tokens":2}}\n\n'), 2);
    assert.equal(scan('{"completion_tokens_details":{"reasoning_tokens":2}}'), -1);
  });

  it('finds nothing without a number, or with digits cut off at the end of the read', () => {
    assert.equal(scan('{"choices":[{"delta":{"content":"hi"}}]}'), -1);
    assert.equal(scan('{"completion_tokens":"x"}'), -1);
    assert.equal(scan('{"completion_tokens":12'), -1, '12 may continue in the next read');
    assert.equal(scan('{"completion_tokens":12}'), 12);
  });

  it('searches only its window of a shared read buffer', () => {
    const text = '{"completion_tokens":5} | {"completion_tokens":7}';
    const cut = text.indexOf('|');
    assert.equal(scan(text, 0, cut), 5);
    assert.equal(scan(text, cut, text.length), 7);
    assert.equal(scan(text, 3, cut), -1, 'a key that starts before the window is not in it');
  });
});

describe('request log lines', () => {
  it('writes each record as one JSON line with every field, escaping only what needs it', async () => {
    const { RequestLog } = await import('../src/router/request-log.js');
    const { JsonLineWriter } = await import('../src/router/json-line.js');
    const { mkdtemp, readFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(await mkdtemp(join(tmpdir(), 'reqlog-')), 'requests.log');
    const errors: Error[] = [];
    const log = new RequestLog(file, (e) => errors.push(e));
    const { requestIdOf } = await import('../src/router/request-id.js');
    const endedAt = performance.now();
    const base = { requestId: 'id-1', requestNumber: 0, model: 'm', backend: 'b', status: 200, attempts: 1, bytesIn: 10, bytesOut: 20, ttftMs: 1.234, durationMs: 12.5, endedAt, outputTokens: 7, stream: true, client: '127.0.0.1', end: 'completed' as const };
    const records = [
      base,
      { ...base, requestId: 'odd "id"\\\n\u0001', model: 'modèle ü', backend: undefined, status: 0, ttftMs: undefined, outputTokens: undefined, end: 'client_gone' as const },
      { ...base, requestId: 'x'.repeat(30_000), durationMs: 0.004 },
      // the usual line is written from one pre-encoded piece; the others field by field
      { ...base, stream: false },
      { ...base, attempts: 2 },
      { ...base, status: 502, attempts: 3, end: 'upstream_error' as const, stream: false },
      { ...base, status: 200, end: 'timeout' as const },
      // a backend's name and model are encoded once per pair, the client once per change: the
      // cached pieces must follow the record (another model, escaped text, another client)
      { ...base, model: 'other' },
      { ...base, model: 'modèle "ü"', stream: false },
      { ...base, model: 'modèle "ü"', status: 404, end: 'no_backend' as const, backend: undefined },
      { ...base, status: 429, attempts: 0, end: 'refused' as const, backend: undefined, ttftMs: undefined, outputTokens: undefined },
      { ...base, client: '::ffff:10.0.0.2' },
      // ids the router made: the prefix pre-encoded, the counter's base-36 digits written
      ...[1, 9, 10, 35, 36, 1295, 46_656, 2 ** 31 - 1, 2 ** 31, 2 ** 40 + 7].map((n) => ({ ...base, requestNumber: n, requestId: requestIdOf(n) })),
      // numbers at the edges of int32 (digits by integer arithmetic below 2^31, by doubles above)
      { ...base, bytesIn: 2 ** 31 - 1, bytesOut: 2 ** 31, outputTokens: 0 },
      { ...base, bytesIn: 999_999_999, bytesOut: 1_000_000_000, durationMs: 2 ** 31 / 100 + 0.5, ttftMs: 21_474_836.47 },
      { ...base, bytesOut: 2 ** 53 - 1, durationMs: 1e12 + 0.25 },
      // a line's time is its end on the forwarder's clock: ends a second apart, and at a second's edge
      { ...base, endedAt: endedAt + 1000 },
      { ...base, endedAt: endedAt - 1000 },
      base,
    ];
    for (const r of records) log.write(r);
    await log.close();
    const lines = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, records.length);
    assert.deepEqual(errors, []);
    for (const [i, r] of records.entries()) {
      const l = lines[i];
      assert.equal(l.msg, 'request');
      assert.equal(l.svc, 'router');
      // the wall clock of the record's end (the log's offset between the clocks may move a little)
      const wall = performance.timeOrigin + r.endedAt;
      assert.ok(Math.abs(Date.parse(l.time) - wall) < 1000, `time ${l.time} for ${new Date(wall).toISOString()}`);
      assert.deepEqual(
        { request_id: l.request_id, model: l.model, backend: l.backend, status: l.status, end: l.end, attempts: l.attempts, stream: l.stream, bytes_in: l.bytes_in, bytes_out: l.bytes_out, ttft_ms: l.ttft_ms, duration_ms: l.duration_ms, output_tokens: l.output_tokens, client: l.client },
        {
          request_id: r.requestId,
          model: r.model ?? null,
          backend: r.backend ?? null,
          status: r.status === 0 ? null : r.status,
          end: r.end,
          attempts: r.attempts,
          stream: r.stream,
          bytes_in: r.bytesIn,
          bytes_out: r.bytesOut,
          ttft_ms: r.ttftMs === undefined ? null : Math.round(r.ttftMs * 100) / 100,
          duration_ms: Math.round(r.durationMs * 100) / 100,
          output_tokens: r.outputTokens,
          client: r.client,
        },
      );
    }
    // numbers as JSON.stringify writes them after rounding to hundredths
    const written = (f: (w: InstanceType<typeof JsonLineWriter>) => void): string => {
      const w = new JsonLineWriter(Buffer.alloc(40));
      f(w);
      return w.buf.subarray(0, w.at).toString();
    };
    for (const v of [0, 0.004, 0.05, 1.1, 1.2345, 2.5, 99.999, 123456.78, -0.004, -1.234, -2.5, 21_474_836.47, 21_474_836.48, 1e12 + 0.25, 2 ** 40 + 0.07]) {
      assert.equal(written((w) => w.fixed2(v)), JSON.stringify(Math.round(v * 100) / 100), `fixed2(${v})`);
    }
    // integers as JSON.stringify writes them; base 36 as toString(36)
    const edges = [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 99_999, 100_000, 999_999, 1e6, 1e7 - 1, 1e7, 1e8, 1e9 - 1, 1e9, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 1e15, 2 ** 53 - 1];
    for (const n of edges) {
      assert.equal(written((w) => w.int(n)), String(n), `int(${n})`);
      if (n > 0) assert.equal(written((w) => w.int(-n)), String(-n), `int(-${n})`);
      if (n > 0) assert.equal(written((w) => w.base36(n)), n.toString(36), `base36(${n})`);
    }
    for (const n of [0, 7, 10, 99, 100, 999]) assert.equal(written((w) => w.digits3(n)), String(n).padStart(3, '0'), `digits3(${n})`);
  });
});
