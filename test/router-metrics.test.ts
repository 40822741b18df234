/**
 * The router's metrics move when their events happen (a request of each kind, a retry, an
 * ejection, a health check, the registry going away), and the request log says what happened to
 * each request without its body or headers.
 */
import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { http, readSse, startMocks, startRegistry, startService, waitFor, writeStaticServices, type RunningService } from './helpers/services.js';
import { freePort } from '../bench/processes.js';

/** One sample of a metrics text: the value of `name` whose labels include every pair of `labels`. */
function samples(text: string, name: string, labels: Record<string, string> = {}): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) out.push(Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const scrape = async (svc: RunningService) => (await fetch(`${svc.url}/metrics`)).text();
const value = async (svc: RunningService, name: string, labels: Record<string, string> = {}) => sum(samples(await scrape(svc), name, labels));

/** The request log lines a router wrote to stdout so far. */
function requestLines(router: RunningService): any[] {
  return router.stdout
    .split('\n')
    .filter((l) => l.includes('"msg":"request"'))
    .map((l) => JSON.parse(l));
}

async function staticRouter(backends: Array<{ name: string; port: number }>, args: string[] = []): Promise<RunningService> {
  const file = await writeStaticServices(backends.map((b) => ({ ...b, models: ['m'] })));
  return startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, ...args]);
}

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'm', messages: [{ role: 'user', content: 'the secret prompt text' }], max_tokens: 6, ...extra });

describe('router metrics and request log', () => {
  it('counts requests by model, backend, route and status class, with duration, TTFT, ITL and tokens', async () => {
    const [mock] = await startMocks([{ models: 'm', args: ['--ttft-ms', '20', '--itl-ms', '5', '--output-tokens', '6'] }]);
    const router = await staticRouter([{ name: 'mock-a', port: mock!.port }], ['--request-log', 'stdout']);
    const headers = { authorization: 'Bearer very-secret-token' };
    let tokens = 0;
    for (let i = 0; i < 2; i++) {
      const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat(), headers });
      assert.equal(r.status, 200);
      tokens += r.body.usage.completion_tokens;
    }
    const stream = await readSse(`${router.url}/v1/chat/completions`, chat({ stream: true, stream_options: { include_usage: true } }), { ...headers, 'x-request-id': 'streamed-1' });
    assert.equal(stream.done, true);
    const streamTokens = stream.events.at(-1).usage.completion_tokens as number;
    tokens += streamTokens;
    const embed = await http('POST', `${router.url}/v1/embeddings`, { body: { model: 'm', input: 'x' } });
    assert.equal(embed.status, 200);
    const unknown = await http('POST', `${router.url}/v1/chat/completions`, { body: { ...chat(), model: 'nope' } });
    assert.equal(unknown.status, 404);
    const unknownId = unknown.headers.get('x-request-id');
    assert.ok(typeof unknownId === 'string' && unknownId !== '', 'an answer the router gave itself carries the request id too');

    const text = await scrape(router);
    const ok = { model: 'm', backend: 'mock-a', status_class: '2xx' };
    assert.equal(sum(samples(text, 'infini_router_requests_total', { ...ok, route: '/v1/chat/completions' })), 3);
    assert.equal(sum(samples(text, 'infini_router_requests_total', { ...ok, route: '/v1/embeddings' })), 1);
    assert.equal(sum(samples(text, 'infini_router_requests_total', { model: 'nope', backend: '', status_class: '4xx' })), 1, 'answered by the router itself');
    assert.equal(sum(samples(text, 'infini_router_request_duration_seconds_count', { model: 'm', backend: 'mock-a' })), 4);
    assert.equal(sum(samples(text, 'infini_router_ttft_seconds_count', { model: 'm', backend: 'mock-a' })), 4);
    // the mock waits 20 ms before its first token: no chat TTFT can be in the buckets up to 10 ms (the embedding may)
    assert.ok(sum(samples(text, 'infini_router_ttft_seconds_bucket', { backend: 'mock-a', le: '0.01' })) <= 1);
    assert.equal(sum(samples(text, 'infini_router_ttft_seconds_bucket', { backend: 'mock-a', le: '+Inf' })), 4);
    assert.ok(sum(samples(text, 'infini_router_itl_seconds_count', { backend: 'mock-a' })) >= 2, 'gaps between the stream\'s events');
    assert.equal(sum(samples(text, 'infini_router_output_tokens_total', { model: 'm', backend: 'mock-a' })), tokens);
    assert.equal(sum(samples(text, 'infini_router_output_tokens_per_second_count', { backend: 'mock-a' })), 3);
    assert.equal(sum(samples(text, 'infini_router_upstream_in_flight', { backend: 'mock-a' })), 0);
    assert.equal(sum(samples(text, 'infini_router_errors_total', { status: '404' })), 1);

    // the request log: one line each, flushed within a second or so
    await waitFor(() => requestLines(router).length === 5, 'five request log lines', 5000);
    const lines = requestLines(router);
    const streamed = lines.find((l) => l.request_id === 'streamed-1');
    assert.ok(streamed, 'the client\'s x-request-id is the logged id');
    assert.equal(streamed.end, 'completed');
    assert.equal(streamed.stream, true);
    assert.equal(streamed.status, 200);
    assert.equal(streamed.backend, 'mock-a');
    assert.equal(streamed.model, 'm');
    assert.equal(streamed.attempts, 1);
    assert.equal(streamed.output_tokens, streamTokens);
    assert.ok(streamed.ttft_ms >= 20 && streamed.ttft_ms <= streamed.duration_ms, `TTFT ${streamed.ttft_ms} ms within the request's ${streamed.duration_ms} ms`);
    assert.ok(streamed.bytes_in > 0 && streamed.bytes_out > 0);
    assert.equal(streamed.client, '127.0.0.1');
    const missing = lines.find((l) => l.model === 'nope');
    assert.equal(missing.end, 'no_backend');
    assert.equal(missing.status, 404);
    assert.equal(missing.backend, null);
    assert.equal(missing.request_id, unknownId);
    assert.ok(!router.stdout.includes('very-secret-token'), 'no Authorization header in the log');
    assert.ok(!router.stdout.includes('the secret prompt text'), 'no body in the log');
    await router.stop();
    await mock!.stop();
  });

  it('logs a client that left mid-stream as client_gone and stops counting it in flight', async () => {
    const [mock] = await startMocks([{ models: 'm', args: ['--ttft-ms', '1', '--itl-ms', '40', '--output-tokens', '200'] }]);
    const router = await staticRouter([{ name: 'mock-a', port: mock!.port }], ['--request-log', 'stdout']);
    const abort = new AbortController();
    const res = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(chat({ stream: true, max_tokens: 200 })), headers: { 'x-request-id': 'leaver' }, signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    const line = await waitFor(() => requestLines(router).find((l) => l.request_id === 'leaver'), 'log line of the request whose client left', 5000);
    assert.equal(line.end, 'client_gone');
    assert.equal(line.status, 200, 'the head had reached the client');
    assert.ok(line.ttft_ms !== null);
    await waitFor(async () => (await value(router, 'infini_router_in_flight')) === 0, 'nothing in flight');
    assert.equal(await value(router, 'infini_router_requests_total', { backend: 'mock-a', status_class: '2xx' }), 1);
    await router.stop();
    await mock!.stop();
  });

  it('counts failures by kind, retries, ejections and health checks per backend', async () => {
    const [mock, failing, doomed] = await startMocks([{ models: 'm' }, { models: 'm', args: ['--error-rate', '1', '--error-status', '503'] }, { models: 'm' }]);
    const neverUp = await freePort();
    const router = await staticRouter(
      [
        { name: 'dead', port: doomed!.port },
        { name: 'live', port: mock!.port },
        { name: 'unavailable', port: failing!.port },
        { name: 'never-up', port: neverUp },
      ],
      ['--max-errors', '1', '--health-interval', '3600'],
    );
    // the start-up checks pass for the three mocks; then one of them dies without the router knowing
    await waitFor(async () => (await value(router, 'infini_router_health_checks_total', { backend: 'dead', result: 'ok' })) === 1, 'start-up check of the doomed backend');
    await doomed!.stop('SIGKILL');
    for (let i = 0; i < 6; i++) await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
    const text = await scrape(router);
    assert.ok(sum(samples(text, 'infini_router_upstream_failures_total', { backend: 'dead', kind: 'connect' })) >= 1, 'connection refused counted');
    assert.ok(sum(samples(text, 'infini_router_retries_total', { backend: 'dead' })) >= 1, 'the request moved on from the dead backend');
    assert.ok(sum(samples(text, 'infini_router_upstream_failures_total', { backend: 'unavailable', kind: 'status_503' })) >= 1, '503 answers counted');
    assert.ok(sum(samples(text, 'infini_router_ejections_total', { backend: 'unavailable' })) >= 1, 'one failure ejects with --max-errors 1');
    assert.equal(sum(samples(text, 'infini_router_backend_routable', { backend: 'live' })), 1);
    assert.equal(sum(samples(text, 'infini_router_backend_routable', { backend: 'dead' })), 0);
    await waitFor(async () => (await value(router, 'infini_router_health_checks_total', { backend: 'live', result: 'ok' })) >= 1, 'the start-up check of live counted');
    await waitFor(async () => (await value(router, 'infini_router_health_checks_total', { backend: 'never-up', result: 'unanswered' })) >= 1, 'a check nobody answered counted');
    await router.stop();
    await Promise.all([mock!.stop(), failing!.stop()]);
  });

  it('counts policy branches and shows the registry feed state, also when the registry goes away', async () => {
    const registry = await startRegistry();
    const [mock] = await startMocks([{ models: 'm', args: ['--registry-url', registry.url, '--heartbeat-interval', '1'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', registry.url]);
    await waitFor(async () => (await http('GET', `${router.url}/health`)).body.healthy_services === '1/1', 'backend discovered');
    assert.equal(await value(router, 'infini_router_registry_feed_state', { state: 'connected' }), 1);
    await http('POST', `${router.url}/v1/chat/completions`, { body: chat({ prompt_cache_key: 'conversation-1' }) });
    await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
    const text = await scrape(router);
    assert.equal(sum(samples(text, 'infini_router_policy_decisions_total', { policy: 'session-affinity', branch: 'hit' })), 1);
    assert.equal(sum(samples(text, 'infini_router_policy_decisions_total', { policy: 'session-affinity', branch: 'fallback' })), 1);
    assert.equal(sum(samples(text, 'infini_router_policy_decisions_total', { policy: 'size-class', branch: 'untyped' })), 2);
    await registry.stop('SIGKILL');
    await waitFor(async () => (await value(router, 'infini_router_registry_feed_state', { state: 'stale' })) === 1, 'feed state stale once the registry is gone');
    assert.equal(await value(router, 'infini_router_registry_feed_state', { state: 'connected' }), 0);
    await router.stop();
    await mock!.stop();
  });
});
