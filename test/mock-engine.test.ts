/**
 * The HTTP mock driven by its engine model in real time, with the h100-8b profile (5 ms steps):
 * queueing shows in TTFT and the gauges, a chat's next turn hits the prefix cache (its prompt and
 * the answer before it), a client that leaves frees its place, a request that can never fit is
 * refused. Assertions are on conditions and on lower bounds the model guarantees, never on
 * upper time bounds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from './helpers/test.js';
import { http, metric, readSse, startService, waitFor, type RunningService } from './helpers/services.js';

describe('mock: continuous-batching engine over HTTP', () => {
  let mock: RunningService;
  // one request runs at a time; 64 KV blocks of 16 tokens; answers up to 900 tokens (4.5 s of steps)
  before(async () => {
    mock = await startService(['mock', '--port', '0', '--models', 'm', '--profile', 'h100-8b', '--max-concurrency', '1', '--output-tokens', '900', '--kv-blocks', '64']);
  });
  after(() => mock.stop());
  const url = () => `${mock.url}/v1/chat/completions`;
  const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'm', messages: [{ role: 'user', content }], ...extra });

  it('queues requests beyond the running limit: the gauges show it and TTFT grows with the queue', async () => {
    const loneSent = performance.now();
    const lone = await readSse(url(), chat('alone', { stream: true, max_tokens: 40 }));
    assert.ok(lone.done);
    const loneTtft = lone.times[0]! - loneSent;
    // 4 at once, 40 tokens each: each holds the engine for at least 40 steps of 5 ms
    const sent = performance.now();
    const runs = [0, 1, 2, 3].map((i) => readSse(url(), chat(`queued ${i}`, { stream: true, max_tokens: 40 })).then((r) => ({ ...r, ttft: r.times[0]! - sent })));
    await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_waiting')) === 3, 'three requests waiting');
    assert.equal(await metric(mock.url, 'vllm:num_requests_running'), 1);
    assert.ok((await metric(mock.url, 'vllm:kv_cache_usage_perc')) > 0, 'the running request holds KV blocks');
    const done = await Promise.all(runs);
    assert.ok(done.every((r) => r.done));
    const ttfts = done.map((r) => r.ttft).sort((a, b) => a - b);
    assert.ok(ttfts[3]! >= 3 * 40 * 5 - 10, `the last waited for three others (TTFTs ${ttfts.map(Math.round).join(', ')} ms)`);
    assert.ok(ttfts[3]! > loneTtft, `queued TTFT above a lone request's (${Math.round(loneTtft)} ms)`);
    await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_waiting')) + (await metric(mock.url, 'vllm:num_requests_running')) === 0, 'engine idle');
    assert.equal(await metric(mock.url, 'vllm:time_to_first_token_seconds_count'), 5);
    assert.ok((await metric(mock.url, 'vllm:inter_token_latency_seconds_count')) >= 5 * 39);
  });

  it("counts a chat's next turn as prefix-cache hits, its previous answer included", async () => {
    const system = 'You are a careful assistant who answers questions about caches in plain words.';
    const first = [{ role: 'system', content: system }, { role: 'user', content: 'What is a prefix cache?' }];
    const hits0 = await metric(mock.url, 'vllm:prefix_cache_hits_total');
    const a = await http('POST', url(), { body: { model: 'm', messages: first, max_tokens: 48 } });
    assert.equal(a.status, 200);
    const answer = a.body.choices[0].message.content as string;
    const hits1 = await metric(mock.url, 'vllm:prefix_cache_hits_total');
    const second = [...first, { role: 'assistant', content: answer }, { role: 'user', content: 'And when is it evicted?' }];
    const b = await http('POST', url(), { body: { model: 'm', messages: second, max_tokens: 4 } });
    assert.equal(b.status, 200);
    const hits = (await metric(mock.url, 'vllm:prefix_cache_hits_total')) - hits1;
    assert.ok(hits >= a.body.usage.prompt_tokens + 32, `the second turn found the first's prompt and most of its answer (${hits} tokens, first turn ${hits1 - hits0})`);
    assert.equal(hits % 16, 0, 'hits are whole blocks');
  });

  it('cancels the engine request when the client disconnects, mid-stream and while waiting', async () => {
    const cancelled = await metric(mock.url, 'mock:requests_cancelled_total');
    const holder = new AbortController();
    const res = await fetch(url(), { method: 'POST', body: JSON.stringify(chat('long answer', { stream: true })), signal: holder.signal });
    const reader = res.body!.getReader();
    await reader.read(); // first token: running, 900 tokens to go
    const waiter = new AbortController();
    const queued = fetch(url(), { method: 'POST', body: JSON.stringify(chat('behind it', { max_tokens: 2 })), signal: waiter.signal }).catch(() => 'aborted');
    await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_waiting')) === 1, 'second request waiting');
    waiter.abort();
    assert.equal(await queued, 'aborted');
    await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_waiting')) === 0, 'queue emptied');
    assert.equal(await metric(mock.url, 'vllm:num_requests_running'), 1);
    holder.abort();
    await waitFor(async () => (await metric(mock.url, 'vllm:num_requests_running')) === 0, 'running gauge back to 0');
    assert.equal(await metric(mock.url, 'vllm:kv_cache_usage_perc'), 0, 'its KV blocks freed');
    await waitFor(async () => (await metric(mock.url, 'mock:requests_cancelled_total')) === cancelled + 2, 'both cancellations counted');
    // the engine goes on serving
    const after = await http('POST', url(), { body: chat('still there', { max_tokens: 2 }) });
    assert.equal(after.status, 200);
  });

  it('refuses with 400 a request that can never fit the KV cache', async () => {
    const r = await http('POST', url(), { body: chat('w '.repeat(1100), { max_tokens: 2 }) });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.type, 'invalid_request_error');
    assert.equal(r.body.error.code, 'context_length_exceeded');
    assert.ok(mock.alive);
  });
});
