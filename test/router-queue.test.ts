/**
 * Per-backend limits and the wait queue with a real router and mock engines: a request finding
 * every backend of its model at its limit waits and is served when one has room; a full queue is
 * answered at once, a wait that lasts --queue-timeout gets 503 with Retry-After, a client that
 * leaves while waiting leaves the queue (no backend sees it); and under a stream of requests with
 * short timeouts nothing is left behind.
 */
import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { http, startMocks, startRegistry, startService, tempDir, waitFor, writeStaticServices, type RunningService } from './helpers/services.js';

/** Values of `name` whose labels include every pair of `labels`, summed. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
const scrape = async (svc: RunningService) => (await fetch(`${svc.url}/metrics`)).text();
const metric = async (svc: RunningService, name: string, labels: Record<string, string> = {}) => value(await scrape(svc), name, labels);

function requestLines(router: RunningService): any[] {
  return router.stdout
    .split('\n')
    .filter((l) => l.includes('"msg":"request"'))
    .map((l) => JSON.parse(l));
}

const chat = { model: 'm', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 };
const URL_PATH = '/v1/chat/completions';

/** A router over mocks serving model `m`, each registered with `metadata.max_concurrency`. */
async function limitedRouter(limits: number[], routerArgs: string[], mockArgs: string[] = []) {
  const mocks = await startMocks(limits.map(() => ({ models: 'm', args: mockArgs })));
  const file = await writeStaticServices(mocks.map((m, i) => ({ name: `mock-${i}`, port: m.port, models: ['m'], metadata: { max_concurrency: limits[i] } })));
  const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--health-interval', '3600', '--request-log', 'stdout', ...routerArgs]);
  return { mocks, router };
}

/** A request the mock never answers, until its client gives up (then the router cancels it upstream). */
function hanging(router: RunningService, id: string): { abort: () => void; done: Promise<unknown> } {
  const ac = new AbortController();
  const done = fetch(`${router.url}${URL_PATH}`, { method: 'POST', body: JSON.stringify(chat), headers: { 'content-type': 'application/json', 'x-mock-hang': '1', 'x-request-id': id }, signal: ac.signal }).catch((e: unknown) => e);
  return { abort: () => ac.abort(), done };
}

describe('per-backend limits and the wait queue', () => {
  it('with every backend at its limit a request waits, and is served when one has room', async () => {
    const { mocks, router } = await limitedRouter([1, 1], ['--queue-timeout', '20']);
    const a = hanging(router, 'hang-a');
    const b = hanging(router, 'hang-b');
    await waitFor(async () => (await metric(router, 'infini_router_in_flight')) === 2, 'both backends busy');
    const text = await scrape(router);
    assert.equal(value(text, 'infini_router_upstream_in_flight', { backend: 'mock-0' }), 1, 'one each: the limit spreads them');
    assert.equal(value(text, 'infini_router_upstream_in_flight', { backend: 'mock-1' }), 1);
    assert.equal(value(text, 'infini_router_backend_max_concurrency', { backend: 'mock-0' }), 1);
    const third = http('POST', `${router.url}${URL_PATH}`, { body: chat, headers: { 'x-request-id': 'waiter' } });
    await waitFor(async () => (await metric(router, 'infini_router_queue_length', { model: 'm' })) === 1, 'the third request waits');
    assert.equal(await metric(router, 'infini_router_upstream_attempts_total'), 2, 'no backend was sent a third');
    // the dashboard and `status` (its traffic view) show the waiting request beside the ones in flight
    const snap = (await http('GET', `${router.url}/dashboard/api/snapshot`)).body;
    assert.deepEqual([snap.totals.in_flight, snap.totals.queued, snap.queued], [2, 1, { m: 1 }]);
    const traffic = (await http('GET', `${router.url}/dashboard/api/traffic`)).body;
    assert.deepEqual([traffic.in_flight, traffic.queued], [2, 1]);
    a.abort();
    const res = await third;
    assert.equal(res.status, 200, res.text);
    const after = await scrape(router);
    assert.equal(value(after, 'infini_router_queue_length', { model: 'm' }), 0);
    assert.deepEqual((await http('GET', `${router.url}/dashboard/api/snapshot`)).body.queued, {}, 'no model waits any more');
    assert.equal(value(after, 'infini_router_queue_requests_total', { model: 'm', outcome: 'dispatched' }), 1);
    assert.equal(value(after, 'infini_router_queue_wait_seconds_count', { model: 'm' }), 1);
    const line = await waitFor(() => requestLines(router).find((l) => l.request_id === 'waiter'), 'log line of the waiting request', 5000);
    assert.equal(line.end, 'completed');
    assert.ok(line.queued_ms > 0 && line.queued_ms <= line.duration_ms, `queued ${line.queued_ms} ms of ${line.duration_ms}`);
    const plain = await waitFor(() => requestLines(router).find((l) => l.request_id === 'hang-a'), 'log line of a request that never waited', 5000);
    assert.equal(plain.queued_ms, undefined, 'only requests that waited say how long');
    b.abort();
    await Promise.all([a.done, b.done]);
    await waitFor(async () => (await metric(router, 'infini_router_in_flight')) === 0, 'nothing in flight');
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });

  it('a full queue is answered at once; a wait of --queue-timeout gets 503 queue_timeout with Retry-After', async () => {
    const { mocks, router } = await limitedRouter([1], ['--queue-size', '1', '--queue-timeout', '1']);
    const busy = hanging(router, 'busy');
    await waitFor(async () => (await metric(router, 'infini_router_in_flight')) === 1, 'the backend is busy');
    const started = Date.now();
    const waiting = http('POST', `${router.url}${URL_PATH}`, { body: chat, headers: { 'x-request-id': 'timed-out' } });
    await waitFor(async () => (await metric(router, 'infini_router_queue_length', { model: 'm' })) === 1, 'one waits');
    const full = await http('POST', `${router.url}${URL_PATH}`, { body: chat, headers: { 'x-request-id': 'refused' } });
    assert.equal(full.status, 503);
    assert.equal(full.body.error.code, 'queue_full');
    assert.equal(full.body.error.type, 'server_error');
    assert.match(full.body.error.message, /model 'm'.*concurrency limit.*queue is full/);
    assert.equal(full.headers.get('retry-after'), '5');
    assert.equal(await metric(router, 'infini_router_queue_length', { model: 'm' }), 1, 'refused at once: the other still waits');
    const timedOut = await waiting;
    const waited = Date.now() - started;
    assert.equal(timedOut.status, 503);
    assert.equal(timedOut.body.error.code, 'queue_timeout');
    assert.match(timedOut.body.error.message, /queue timeout \(1 s\)/);
    assert.equal(timedOut.headers.get('retry-after'), '5');
    assert.ok(waited >= 1000, `answered after the timeout, not before (${waited} ms)`);
    const text = await scrape(router);
    assert.equal(value(text, 'infini_router_queue_requests_total', { outcome: 'full' }), 1);
    assert.equal(value(text, 'infini_router_queue_requests_total', { outcome: 'timeout' }), 1);
    assert.equal(value(text, 'infini_router_queue_length'), 0);
    assert.equal(value(text, 'infini_router_queue_bytes'), 0);
    assert.equal(value(text, 'infini_router_upstream_attempts_total'), 1, 'neither reached the backend');
    const lines = await waitFor(() => {
      const l = requestLines(router);
      return l.some((x) => x.request_id === 'timed-out') && l.some((x) => x.request_id === 'refused') ? l : undefined;
    }, 'log lines of both', 5000);
    const t = lines.find((l) => l.request_id === 'timed-out');
    assert.equal(t.end, 'queue_timeout');
    assert.equal(t.status, 503);
    assert.equal(t.backend, null);
    assert.ok(t.queued_ms >= 1000);
    const r = lines.find((l) => l.request_id === 'refused');
    assert.equal(r.end, 'queue_full');
    assert.equal(r.queued_ms, undefined);
    busy.abort();
    await busy.done;
    // room again: served as usual
    assert.equal((await http('POST', `${router.url}${URL_PATH}`, { body: chat })).status, 200);
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });

  it('a client that disconnects while waiting leaves the queue at once; no backend sees it', async () => {
    const { mocks, router } = await limitedRouter([1], ['--queue-timeout', '20']);
    const busy = hanging(router, 'busy');
    await waitFor(async () => (await metric(router, 'infini_router_in_flight')) === 1, 'the backend is busy');
    const leaver = hanging(router, 'leaver');
    await waitFor(async () => (await metric(router, 'infini_router_queue_length', { model: 'm' })) === 1, 'it waits');
    leaver.abort();
    await leaver.done;
    await waitFor(async () => (await metric(router, 'infini_router_queue_length', { model: 'm' })) === 0, 'it left the queue');
    const text = await scrape(router);
    assert.equal(value(text, 'infini_router_queue_requests_total', { outcome: 'client_gone' }), 1);
    assert.equal(value(text, 'infini_router_queue_bytes'), 0);
    const line = await waitFor(() => requestLines(router).find((l) => l.request_id === 'leaver'), 'its log line', 5000);
    assert.equal(line.end, 'client_gone');
    assert.equal(line.status, null);
    assert.ok(line.queued_ms >= 0);
    // the backend frees up: the request that left is not sent to it
    busy.abort();
    await busy.done;
    await waitFor(async () => (await metric(router, 'infini_router_in_flight')) === 0, 'nothing in flight');
    assert.equal((await http('POST', `${router.url}${URL_PATH}`, { body: chat })).status, 200);
    const after = await scrape(router);
    assert.equal(value(after, 'infini_router_upstream_attempts_total'), 2, 'the busy request and the last one: never the one that left');
    assert.equal(value(after, 'infini_router_queue_requests_total', { outcome: 'dispatched' }), 0);
    const engine = await (await fetch(`${mocks[0]!.url}/metrics`)).text();
    assert.equal(value(engine, 'vllm:request_success_total'), 1, 'the engine ran one request to its end');
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });

  it('the compatible error format also sends Retry-After on queue errors', async () => {
    const { mocks, router } = await limitedRouter([1], ['--queue-size', '0', '--error-format', 'original']);
    const busy = hanging(router, 'busy');
    await waitFor(async () => (await metric(router, 'infini_router_in_flight')) === 1, 'the backend is busy');
    const res = await http('POST', `${router.url}${URL_PATH}`, { body: chat });
    assert.equal(res.status, 503);
    assert.match(res.body.error, /queue is full/);
    assert.equal(res.headers.get('retry-after'), '5');
    busy.abort();
    await busy.done;
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });

  it('limits come from the registration (and follow its updates), a config entry before it', async () => {
    const [mock] = await startMocks([{ models: 'm' }]);
    const reg = await startRegistry();
    const dir = await tempDir();
    const config = join(dir, 'router.toml');
    await writeFile(config, '[max_concurrency]\n"pinned-*" = 7\n');
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--config', config, '--health-interval', '3600']);
    const register = (name: string, limit: number) =>
      http('POST', `${reg.url}/services`, { body: { name, host: '127.0.0.1', port: mock!.port, hostname: 'x', url: mock!.url, status: 'running', metadata: { type: 'openai-api', models: ['m'], max_concurrency: limit } } });
    await register('free', 2);
    await register('pinned-1', 2);
    const limitOf = async (backend: string) => metric(router, 'infini_router_backend_max_concurrency', { backend });
    await waitFor(async () => (await limitOf('free')) === 2 && (await limitOf('pinned-1')) === 7, 'limits from the registration and the config file');
    await register('free', 1);
    await waitFor(async () => (await limitOf('free')) === 1, 'the updated registration');
    const services = (await http('GET', `${router.url}/services`)).body.services as Array<{ name: string; max_concurrency: number }>;
    assert.deepEqual(services.map((s) => [s.name, s.max_concurrency]).sort(), [['free', 1], ['pinned-1', 7]]);
    await router.stop();
    await reg.stop();
    await mock!.stop();
  });

  it('--workers: each process gets its share of a limit, rounded up', async () => {
    const [mock] = await startMocks([{ models: 'm' }]);
    const file = await writeStaticServices([{ name: 'mock-0', port: mock!.port, models: ['m'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--workers', '2', '--backend-max-concurrency', '3']);
    // the primary sums the workers' shares: ceil(3 / 2) each
    await waitFor(async () => (await metric(router, 'infini_router_backend_max_concurrency', { backend: 'mock-0' })) === 4, 'both workers report a share of 2');
    await router.stop();
    await mock!.stop();
  });

  it("waiting requests are served by their API key's priority, then in arrival order", async () => {
    const dir = await tempDir();
    const keys = join(dir, 'keys.json');
    await writeFile(keys, JSON.stringify({ keys: [
      { name: 'batch', key: 'sk-test-batch', priority: 0 },
      { name: 'interactive', key: 'sk-test-interactive', priority: 10 },
    ] }));
    const { mocks, router } = await limitedRouter([1], ['--queue-timeout', '20', '--api-keys', keys]);
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    const ac = new AbortController();
    const hang = fetch(`${router.url}${URL_PATH}`, { method: 'POST', body: JSON.stringify(chat), headers: { 'content-type': 'application/json', 'x-mock-hang': '1', ...as('sk-test-batch') }, signal: ac.signal }).catch((e: unknown) => e);
    await waitFor(async () => (await metric(router, 'infini_router_in_flight')) === 1, 'the backend busy');
    const send = (key: string, id: string) => http('POST', `${router.url}${URL_PATH}`, { body: chat, headers: { ...as(key), 'x-request-id': id } });
    const batch1 = send('sk-test-batch', 'batch-1');
    await waitFor(async () => (await metric(router, 'infini_router_queue_length', { model: 'm' })) === 1, 'batch-1 waits');
    const batch2 = send('sk-test-batch', 'batch-2');
    await waitFor(async () => (await metric(router, 'infini_router_queue_length', { model: 'm' })) === 2, 'batch-2 waits');
    const interactive = send('sk-test-interactive', 'interactive');
    await waitFor(async () => (await metric(router, 'infini_router_queue_length', { model: 'm' })) === 3, 'interactive waits');
    ac.abort();
    for (const r of await Promise.all([batch1, batch2, interactive])) assert.equal(r.status, 200, r.text);
    // one at a time through the limit of 1: the log's order of completion is the order of dispatch
    const order = await waitFor(() => {
      const ids = requestLines(router).map((l) => l.request_id).filter((id) => id !== undefined && ['batch-1', 'batch-2', 'interactive'].includes(id));
      return ids.length === 3 ? ids : undefined;
    }, 'three log lines', 5000);
    assert.deepEqual(order, ['interactive', 'batch-1', 'batch-2'], 'the higher priority first, then first come first served');
    await hang;
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });

  it('soak: many requests through short timeouts leave nothing behind', { timeout: 60_000 }, async () => {
    // about 120 ms per request on 2 backends x 2 slots; ~100 requests/s offered for 3 s with a 0.3 s wait and 16 places (more than 0.3 s of work)
    const { mocks, router } = await limitedRouter([2, 2], ['--queue-size', '16', '--queue-timeout', '0.3'], ['--ttft-ms', '20', '--itl-ms', '10', '--output-tokens', '10']);
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const seen = { ok: 0, full: 0, timeout: 0, aborted: 0, other: [] as string[] };
    let maxInFlight = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const text = await scrape(router);
        for (const b of ['mock-0', 'mock-1']) maxInFlight = Math.max(maxInFlight, value(text, 'infini_router_upstream_in_flight', { backend: b }));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const requests: Array<Promise<void>> = [];
    const began = Date.now();
    for (let i = 0; Date.now() - began < 3000; i++) {
      const ac = new AbortController();
      if (rand() < 0.1) setTimeout(() => ac.abort(), Math.floor(rand() * 400));
      requests.push(
        fetch(`${router.url}${URL_PATH}`, { method: 'POST', body: JSON.stringify({ ...chat, messages: [{ role: 'user', content: `hello ${i}` }] }), headers: { 'content-type': 'application/json' }, signal: ac.signal })
          .then(async (res) => {
            const body: any = await res.json();
            if (res.status === 200) seen.ok++;
            else if (res.status === 503 && body.error.code === 'queue_full') seen.full++;
            else if (res.status === 503 && body.error.code === 'queue_timeout') seen.timeout++;
            else seen.other.push(`${res.status} ${JSON.stringify(body)}`);
          })
          .catch(() => {
            seen.aborted++;
          }),
      );
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(requests);
    sampling = false;
    await sampler;
    assert.deepEqual(seen.other, [], 'every answer is a completion or a queue error');
    assert.ok(seen.ok > 0, `some completed (${JSON.stringify(seen)})`);
    assert.ok(maxInFlight <= 2, `no backend beyond its limit (saw ${maxInFlight})`);
    // nothing left behind: no waiter, no byte, nothing in flight
    await waitFor(async () => (await metric(router, 'infini_router_in_flight')) === 0, 'nothing in flight');
    const text = await scrape(router);
    assert.equal(value(text, 'infini_router_queue_length'), 0);
    assert.equal(value(text, 'infini_router_queue_bytes'), 0);
    for (const b of ['mock-0', 'mock-1']) assert.equal(value(text, 'infini_router_upstream_in_flight', { backend: b }), 0);
    // every answer the clients read was counted by the queue (an aborted client may have been answered unread)
    assert.ok(value(text, 'infini_router_queue_requests_total', { outcome: 'full' }) >= seen.full);
    assert.ok(value(text, 'infini_router_queue_requests_total', { outcome: 'timeout' }) >= seen.timeout);
    const outcomes = value(text, 'infini_router_queue_requests_total');
    assert.equal(value(text, 'infini_router_queue_wait_seconds_count'), outcomes - value(text, 'infini_router_queue_requests_total', { outcome: 'full' }), 'every request that waited left the queue once');
    assert.ok(outcomes > 0, 'the queue was used');
    const timedOut = requestLines(router).filter((l) => l.end === 'queue_timeout');
    for (const l of timedOut) assert.ok(l.queued_ms >= 300, `timed out after its wait, not before (${l.queued_ms} ms)`);
    // still serving
    assert.equal((await http('POST', `${router.url}${URL_PATH}`, { body: chat })).status, 200);
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });
});
