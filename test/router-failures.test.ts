import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { describe, it } from './helpers/test.js';
import { freePortPair, http, metric, readSse, servedBy, startMocks, startRegistry, startService, waitFor, writeStaticServices, type RunningService } from './helpers/services.js';

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'm', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4, ...extra });
const requestsServed = async (mocks: RunningService[]) => {
  let n = 0;
  for (const m of mocks) if (m.alive) n += (await http('GET', `${m.url}/health`)).body.requests;
  return n;
};

async function routerFor(mocks: RunningService[], args: string[] = [], env: Record<string, string> = {}): Promise<RunningService> {
  const file = await writeStaticServices(mocks.map((m, i) => ({ name: `mock-${'abcdef'[i]}`, port: m.port, models: ['m'] })));
  return startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, ...args], { env });
}

async function stopAll(...svcs: RunningService[]): Promise<void> {
  await Promise.all(svcs.map((s) => s.stop()));
}

describe('router: retries', () => {
  it('keeps every request succeeding when a backend dies, and reports connection refused when all are gone', async () => {
    const mocks = await startMocks([{ models: 'm' }, { models: 'm' }, { models: 'm' }]);
    const router = await routerFor(mocks, ['--health-interval', '3600', '--max-errors', '100']);
    // wait until the start-up check has passed for everyone, then kill one backend
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services.every((s: any) => s.response_time > 0), 'first health round');
    await mocks[1]!.stop('SIGKILL');
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).status);
    assert.deepEqual(new Set(statuses), new Set([200]));
    const dead = (await http('GET', `${router.url}/services`)).body.services.find((s: any) => s.name === 'mock-b');
    assert.ok(dead.error_count >= 3, `failed attempts counted: ${dead.error_count}`);
    await mocks[0]!.stop('SIGKILL');
    await mocks[2]!.stop('SIGKILL');
    const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
    assert.equal(r.status, 503);
    assert.equal(r.body.error.message, 'Service unavailable - connection refused');
    await router.stop();
  });

  it('never retries once the response has started', async () => {
    const mocks = await startMocks([{ models: 'm' }, { models: 'm' }]);
    const router = await routerFor(mocks);
    const before = await requestsServed(mocks);
    const cut = await readSse(`${router.url}/v1/chat/completions`, chat({ stream: true }), { 'x-mock-drop-after': '2' });
    assert.equal(cut.status, 200);
    assert.equal(cut.done, false);
    assert.ok(cut.error, 'the client sees the stream cut off');
    assert.equal(cut.events.length, 2);
    const plain = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(chat()), headers: { 'x-mock-drop-after': '0' } })
      .then((r) => r.json())
      .then(() => 'complete', () => 'cut');
    assert.equal(plain, 'cut');
    assert.equal(await requestsServed(mocks), before + 2, 'each request reached exactly one backend');
    await stopAll(router, ...mocks);
  });
});

describe('router: timeouts', () => {
  it('answers 504 when no response headers arrive in PROXY_TIMEOUT_SECONDS, without retrying', async () => {
    const mocks = await startMocks([{ models: 'm' }, { models: 'm' }]);
    const router = await routerFor(mocks, [], { PROXY_TIMEOUT_SECONDS: '0.4' });
    const before = await requestsServed(mocks);
    const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat(), headers: { 'x-mock-hang': '1' } });
    assert.equal(r.status, 504);
    assert.equal(r.body.error.message, 'Service timeout');
    assert.equal(await requestsServed(mocks), before + 1);
    // the hung upstream request was abandoned: the backend saw its client go away
    await waitFor(async () => (await metric(mocks[0]!.url, 'mock:requests_cancelled_total')) + (await metric(mocks[1]!.url, 'mock:requests_cancelled_total')) === 1, 'upstream aborted');
    await stopAll(router, ...mocks);
  });

  it('cuts a stream that stays silent longer than --idle-timeout', async () => {
    const mocks = await startMocks([{ models: 'm', args: ['--itl-ms', '3000'] }]);
    const router = await routerFor(mocks, ['--idle-timeout', '0.3']);
    const r = await readSse(`${router.url}/v1/chat/completions`, chat({ stream: true }));
    assert.equal(r.status, 200);
    assert.equal(r.done, false);
    assert.ok(r.error);
    assert.equal(r.events.length, 2, 'role chunk and first token, then silence');
    await waitFor(async () => (await metric(mocks[0]!.url, 'mock:requests_cancelled_total')) === 1, 'backend freed');
    await stopAll(router, ...mocks);
  });

  it('cuts a response that exceeds the total timeout after its headers', async () => {
    const mocks = await startMocks([{ models: 'm', args: ['--itl-ms', '200', '--output-tokens', '20'] }]);
    const router = await routerFor(mocks, [], { PROXY_TIMEOUT_SECONDS: '0.5' });
    const r = await readSse(`${router.url}/v1/chat/completions`, chat({ stream: true, max_tokens: 20 }));
    assert.equal(r.done, false);
    assert.ok(r.error);
    assert.ok(r.events.length >= 2 && r.events.length < 20);
    await stopAll(router, ...mocks);
  });
});

describe('router: client disconnects', () => {
  it('aborts the upstream request at once: waiting for the first token, mid-stream, and non-streaming', async () => {
    const slowStart = await startMocks([{ models: 'm', args: ['--ttft-ms', '20000'] }]);
    const slowTokens = await startMocks([{ models: 'n', args: ['--itl-ms', '400', '--output-tokens', '40'] }]);
    const file = await writeStaticServices([
      { name: 'slow-start', port: slowStart[0]!.port, models: ['m'] },
      { name: 'slow-tokens', port: slowTokens[0]!.port, models: ['n'] },
    ]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file]);
    const a = slowStart[0]!;
    const b = slowTokens[0]!;

    const waiting = new AbortController();
    const p1 = fetch(`${router.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(chat({ stream: true })), signal: waiting.signal }).catch(() => 'aborted');
    await waitFor(async () => (await metric(a.url, 'vllm:num_requests_running')) === 1, 'request running on the backend');
    waiting.abort();
    assert.equal(await p1, 'aborted');
    await waitFor(async () => (await metric(a.url, 'mock:requests_cancelled_total')) === 1, 'backend saw the disconnect while prefilling');

    const mid = new AbortController();
    const res = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ ...chat({ stream: true }), model: 'n', max_tokens: 40 }), signal: mid.signal });
    const reader = res.body!.getReader();
    await reader.read();
    mid.abort();
    await waitFor(async () => (await metric(b.url, 'mock:requests_cancelled_total')) === 1, 'backend saw the disconnect mid-stream');

    const plain = new AbortController();
    const p3 = fetch(`${router.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ ...chat(), model: 'n', max_tokens: 40 }), signal: plain.signal }).catch(() => 'aborted');
    await waitFor(async () => (await metric(b.url, 'vllm:num_requests_running')) === 1, 'non-streaming request running');
    plain.abort();
    assert.equal(await p3, 'aborted');
    await waitFor(async () => (await metric(b.url, 'mock:requests_cancelled_total')) === 2, 'backend saw the disconnect of a plain request');

    const stats = await waitFor(async () => {
      const s = (await http('GET', `${router.url}/stats`)).body;
      return s.in_flight === 0 ? s : undefined;
    }, 'router in-flight back to 0');
    assert.ok(stats.services.every((s: any) => s.error_count === 0 && s.healthy), 'a client hanging up is never a backend failure');
    await stopAll(router, a, b);
  });
});

describe('router: health, ejection and recovery', () => {
  it('ejects a backend after --max-errors consecutive 502/503 answers and routes around it', async () => {
    const mocks = await startMocks([{ models: 'm', args: ['--error-rate', '1', '--error-status', '503'] }, { models: 'm' }]);
    const router = await routerFor(mocks, ['--max-errors', '2', '--health-interval', '3600']);
    const results: Array<[number, string]> = [];
    for (let i = 0; i < 10; i++) {
      const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
      results.push([r.status, r.status === 200 ? servedBy(r.body) : 'mock-a']);
    }
    assert.equal(results.filter(([s]) => s === 503).length, 2, 'backend 503s pass through until the ejection');
    assert.deepEqual(results.slice(4).map(([s]) => s), [200, 200, 200, 200, 200, 200]);
    const a = (await http('GET', `${router.url}/services`)).body.services.find((s: any) => s.name === 'mock-a');
    assert.equal(a.healthy, false);
    assert.ok(a.ejected_until > Date.now() / 1000 + 20);
    assert.equal(a.error_count, 2);
    await router.stop();

    // with frequent checks, a passing check ends the ejection early
    const recovering = await routerFor(mocks, ['--max-errors', '1', '--health-interval', '0.2']);
    await http('POST', `${recovering.url}/v1/chat/completions`, { body: chat() });
    await http('POST', `${recovering.url}/v1/chat/completions`, { body: chat() });
    await waitFor(async () => (await http('GET', `${recovering.url}/services`)).body.services.find((s: any) => s.name === 'mock-a').error_count >= 1, 'an ejection');
    await waitFor(async () => (await http('GET', `${recovering.url}/services`)).body.services.every((s: any) => s.healthy), 'recovery by health check');
    await stopAll(recovering, ...mocks);
  });

  it('does not route to a backend whose babysitter says 503 (not ready) and routes again once it says 200', async () => {
    let ready = false;
    let fake: Server | undefined;
    let mock: RunningService | undefined;
    // find a port pair P (mock) and P+1 (fake babysitter)
    for (let tries = 0; tries < 20 && !fake; tries++) {
      const candidate = await startMocks([{ models: 'm', name: 'mock-a' }]);
      const server = createServer((req, res) => {
        res.writeHead(req.url === '/health' && ready ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: ready ? 'ready' : 'starting' }));
      });
      const ok = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(candidate[0]!.port + 1, '127.0.0.1', () => resolve(true));
      });
      if (ok) {
        fake = server;
        mock = candidate[0];
      } else await candidate[0]!.stop();
    }
    assert.ok(fake && mock);
    const other = (await startMocks([{ models: 'm', name: 'mock-b' }]))[0]!;
    const router = await routerFor([mock, other], ['--health-interval', '0.2']);
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services.find((s: any) => s.name === 'mock-a').healthy === false, 'not-ready backend unroutable');
    for (let i = 0; i < 4; i++) assert.equal(servedBy((await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).body), 'mock-b');
    ready = true;
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services.every((s: any) => s.healthy), 'ready backend routable');
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(servedBy((await http('POST', `${router.url}/v1/chat/completions`, { body: chat() })).body));
    assert.deepEqual(seen, new Set(['mock-a', 'mock-b']));
    await stopAll(router, mock, other);
    fake.close();
  });

  it('rechecks a backend that was not up at start-up within seconds, not a whole interval later', async () => {
    const port = await freePortPair();
    const file = await writeStaticServices([{ name: 'late', port, models: ['m'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--health-interval', '600']);
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services[0].error_count >= 1, 'the start-up check fails');
    const refused = await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
    assert.equal(refused.status, 503);
    const late = await startService(['mock', '--port', String(port), '--models', 'm', '--name', 'late']);
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services[0].healthy, 'the late backend becomes routable');
    const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
    assert.equal(r.status, 200);
    assert.equal(servedBy(r.body), 'late');
    await stopAll(router, late);
  });
});

/**
 * A hung engine: takes requests and never answers them, except streams, which it answers slowly
 * (40 chunks, 50 ms apart); its /health answers until `freeze()`.
 */
async function hangingBackend(): Promise<{ server: Server; port: number; received: string[]; freeze: () => void }> {
  const received: string[] = [];
  let frozen = false;
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      if (frozen) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.method !== 'POST') return; // the router's fallback checks (GET /v1/models): no answer either
      if (!body.includes('"stream":true')) return void received.push(req.url ?? ''); // no answer, ever
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const timer = setInterval(() => {
        if (++n <= 40) return void res.write(`data: {"n":${n}}\n\n`);
        clearInterval(timer);
        res.end('data: [DONE]\n\n');
      }, 50);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, received, freeze: () => (frozen = true) };
}

describe('router: a backend declared dead', () => {
  it('retries a request waiting on a deregistered backend elsewhere at once', async () => {
    const hang = await hangingBackend();
    const reg = await startRegistry();
    const record = (name: string, port: number) => ({ name, host: '127.0.0.1', port, hostname: '127.0.0.1', url: `http://127.0.0.1:${port}`, status: 'running', metadata: { type: 'openai-api', models: ['m'] } });
    assert.equal((await http('POST', `${reg.url}/services`, { body: record('hung-server', hang.port) })).status, 201);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--health-interval', '3600']);
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services.some((s: any) => s.healthy), 'hung backend discovered');
    const pending = http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
    await waitFor(() => hang.received.length === 1, 'the request reached the hung backend');
    const mock = (await startMocks([{ models: 'm', name: 'alive' }]))[0]!;
    await http('POST', `${reg.url}/services`, { body: record('alive', mock.port) });
    // the babysitter deregisters a backend it declared hung (or that exited)
    assert.equal((await http('DELETE', `${reg.url}/services/hung-server`)).status, 200);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(servedBy(r.body), 'alive');
    assert.equal(hang.received.length, 1, 'sent to the dead backend once');
    await waitFor(() => router.logs.some((l) => l.msg === 'backend down: retrying its waiting requests elsewhere' && l.reason === 'deregistered'), 'logged');
    await stopAll(router, reg, mock);
    hang.server.closeAllConnections();
    hang.server.close();
  });

  it('retries waiting requests elsewhere when the health check gets no answer, and keeps a stream that started', async () => {
    const hang = await hangingBackend();
    const mocks = await startMocks([{ models: 'm', name: 'alive' }]);
    const file = await writeStaticServices([
      { name: 'a-hung', port: hang.port, models: ['m', 'hung-only'] },
      { name: 'b-alive', port: mocks[0]!.port, models: ['m'] },
    ]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--health-interval', '0.3', '--health-timeout', '1']);
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services.every((s: any) => s.healthy), 'both routable');
    // a stream under way on the backend that will hang
    const stream = readSse(`${router.url}/v1/chat/completions`, { model: 'hung-only', messages: [], stream: true });
    // a request waiting for its answer there (round robin: at most two tries to land one on it)
    let waiting: Promise<any> | undefined;
    while (hang.received.length === 0) {
      const r = http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
      const landed = await Promise.race([r.then(() => false), waitFor(() => hang.received.length === 1, 'hung request', 2000).then(() => true)]);
      if (landed) waiting = r;
    }
    hang.freeze();
    const r = await waiting!;
    assert.equal(r.status, 200);
    assert.equal(servedBy(r.body), 'alive');
    assert.equal(hang.received.length, 1);
    const s = await stream;
    assert.equal(s.status, 200);
    assert.ok(s.done && s.events.length === 40, 'the stream that had started was not cut');
    const hung = (await http('GET', `${router.url}/services`)).body.services.find((x: any) => x.name === 'a-hung');
    assert.equal(hung.check_ok, false);
    // a timeout may be a blip: dead only after three checks in a row without an answer
    const down = router.logs.filter((l) => l.msg === 'backend down: retrying its waiting requests elsewhere');
    assert.deepEqual(down.map((l) => [l.backend, l.reason]), [['a-hung', 'no answer to 3 health checks']]);
    await stopAll(router, ...mocks);
    hang.server.closeAllConnections();
    hang.server.close();
  });
});

describe('router: graceful shutdown', () => {
  it('lets an in-flight stream finish on SIGTERM, then exits 0', async () => {
    const mocks = await startMocks([{ models: 'm', args: ['--itl-ms', '80', '--output-tokens', '10'] }]);
    const router = await routerFor(mocks);
    const res = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(chat({ stream: true, max_tokens: 10 })) });
    const reader = res.body!.getReader();
    await reader.read();
    router.signal('SIGTERM');
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    assert.match(text, /data: \[DONE\]/);
    assert.equal((await router.exited).code, 0);
    await mocks[0]!.stop();
  });
});

describe('router: connect timeout', () => {
  it('gives up connecting after --connect-timeout and retries elsewhere', async () => {
    // a listener that never accepts, its backlog filled: further connection attempts hang
    const { spawn } = await import('node:child_process');
    const py = spawn('python3', ['-c', 'import socket,sys\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve) => py.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
    const { connect } = await import('node:net');
    const fillers = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
    const mocks = await startMocks([{ models: 'm' }]);
    const file = await writeStaticServices([
      { name: 'blackhole', port, models: ['m'] },
      { name: 'mock-a', port: mocks[0]!.port, models: ['m'] },
    ]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--connect-timeout', '0.3', '--health-interval', '3600', '--max-errors', '100']);
    try {
      for (let i = 0; i < 4; i++) {
        const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
        assert.equal(r.status, 200);
        assert.equal(servedBy(r.body), 'mock-a');
      }
      const hole = (await http('GET', `${router.url}/services`)).body.services.find((s: any) => s.name === 'blackhole');
      assert.ok(hole.error_count >= 1, 'the hanging connect counted as a failed attempt');
      await mocks[0]!.stop();
      const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat() });
      assert.equal(r.status, 503);
      assert.equal(r.body.error.message, 'Service unavailable - connection refused');
    } finally {
      await router.stop();
      fillers.forEach((s) => s.destroy());
      py.kill();
    }
  });
});
