import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer as createHttpsServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from './helpers/test.js';
import { makeTestCa, type TestCa, type TlsPair } from '../bench/tls-certs.js';
import { freePortPair, http, metric, spawnCli, startMocks, startRegistry, startService, waitFor, writeStaticServices, type RunningService } from './helpers/services.js';

const chat = (extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4, ...extra });

interface Answer {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
  reused: boolean;
}

/** One HTTPS request trusting `ca`; `agent` to reuse connections. */
function httpsCall(url: string, ca: string, opts: { method?: string; body?: string; agent?: Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? (opts.body ? 'POST' : 'GET'), ca, agent: opts.agent, headers: opts.body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text, headers: res.headers, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A raw TLS connection to 127.0.0.1:port trusting `ca`, once its handshake is done. */
function tlsConnect(port: number, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Writes `text` on `socket` and resolves with everything read until `done(soFar)` says so. */
function exchange(socket: TLSSocket, text: string, done: (soFar: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer) => {
      got += c.toString('latin1');
      if (done(got)) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(text);
  });
}

const wholeAnswer = (s: string) => {
  const at = s.indexOf('\r\n\r\n');
  const m = /content-length: (\d+)/i.exec(s);
  return at !== -1 && m !== null && s.length >= at + 4 + Number(m[1]);
};
const GET_HEALTH = 'GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n';
const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
const servedSerial = (socket: TLSSocket) => socket.getPeerX509Certificate()!.serialNumber;

describe('TLS: the router serves HTTPS on its own HTTP/1.1 server', () => {
  let ca: TestCa;
  let caPem: string;
  let first: TlsPair;
  let second: TlsPair;
  let live: TlsPair;
  let mock: RunningService;
  let router: RunningService;
  let base: string;
  before(async () => {
    ca = makeTestCa();
    caPem = readFileSync(ca.caFile, 'utf8');
    first = ca.issue('first');
    second = ca.issue('second');
    live = { cert: `${ca.dir}/live.pem`, key: `${ca.dir}/live.key` };
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    [mock] = await startMocks([{ models: 'm', args: ['--itl-ms', '5'] }]);
    const file = await writeStaticServices([{ name: 'mock-a', port: mock.port, models: ['m'] }]);
    router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--tls-cert', live.cert, '--tls-key', live.key]);
    base = `https://127.0.0.1:${router.port}`;
    assert.equal(router.logs.find((l) => l.msg === 'router listening')?.tls, true);
  });
  after(async () => {
    await router.stop();
    await mock.stop();
  });

  it('answers a chat completion over HTTPS, and reuses the connection (keep-alive)', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await httpsCall(`${base}/v1/chat/completions`, caPem, { body: chat(), agent });
      assert.equal(a.status, 200, a.text);
      assert.equal(JSON.parse(a.text).object, 'chat.completion');
      const b = await httpsCall(`${base}/v1/chat/completions`, caPem, { body: chat(), agent });
      assert.equal(b.status, 200);
      assert.equal(b.reused, true, 'the second request went over the first connection');
    } finally {
      agent.destroy();
    }
  });

  it('streams SSE over HTTPS to the end', async () => {
    const a = await httpsCall(`${base}/v1/chat/completions`, caPem, { body: chat({ stream: true, max_tokens: 6 }) });
    assert.equal(a.status, 200);
    assert.match(String(a.headers['content-type']), /text\/event-stream/);
    const events = a.text.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.ok(events.length >= 7, a.text);
    assert.equal(events.at(-1), 'data: [DONE]');
  });

  it('answers a protocol error over TLS with its error answer, then closes', async () => {
    const socket = await tlsConnect(router.port, caPem);
    try {
      const answer = await exchange(socket, 'GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n', wholeAnswer);
      assert.match(answer, /^HTTP\/1\.1 400 /);
      assert.match(answer, /connection: close/i);
      assert.match(answer, /"error"/);
    } finally {
      socket.destroy();
    }
  });

  it('refuses a client that does not trust its certificate, and keeps serving', async () => {
    await assert.rejects(httpsCall(`${base}/health`, readFileSync(first.cert, 'utf8')), /certificate/i);
    assert.equal((await httpsCall(`${base}/health`, caPem)).status, 200);
  });

  it('SIGHUP: new connections get the new certificate, open ones keep working; a broken file keeps the old one', async () => {
    const old = await tlsConnect(router.port, caPem);
    try {
      assert.equal(servedSerial(old), serialOf(readFileSync(first.cert, 'utf8')));
      assert.match(await exchange(old, GET_HEALTH, wholeAnswer), /^HTTP\/1\.1 200 /);

      copyFileSync(second.cert, live.cert);
      copyFileSync(second.key, live.key);
      const reloads = router.logs.filter((l) => l.msg === 'TLS certificate reloaded').length;
      router.proc.kill('SIGHUP');
      await router.waitForLog(() => router.logs.filter((l) => l.msg === 'TLS certificate reloaded').length > reloads);
      const fresh = await tlsConnect(router.port, caPem);
      assert.equal(servedSerial(fresh), serialOf(readFileSync(second.cert, 'utf8')));
      assert.match(await exchange(fresh, GET_HEALTH, wholeAnswer), /^HTTP\/1\.1 200 /);
      fresh.destroy();
      // the connection opened before the reload is still up, on its certificate
      assert.match(await exchange(old, GET_HEALTH, wholeAnswer), /^HTTP\/1\.1 200 /);

      // a key that is not PEM, then a key that does not match: both keep the second pair
      for (const bad of ['not a key\n', readFileSync(first.key, 'utf8')]) {
        writeFileSync(live.key, bad);
        const failures = router.logs.filter((l) => l.msg === 'TLS certificate reload failed; keeping the previous one').length;
        router.proc.kill('SIGHUP');
        const failed = () => router.logs.filter((l) => l.msg === 'TLS certificate reload failed; keeping the previous one');
        await router.waitForLog(() => failed().length > failures);
        assert.match(String(failed().at(-1)!.err), /live\.key/);
        const after = await tlsConnect(router.port, caPem);
        assert.equal(servedSerial(after), serialOf(readFileSync(second.cert, 'utf8')));
        after.destroy();
      }
      assert.ok(router.alive);
    } finally {
      old.destroy();
    }
  });
});

describe('TLS: shutdown', () => {
  it('a connection that never finishes its handshake does not hold the router\'s stop', async () => {
    const ca = makeTestCa();
    const pair = ca.issue('stop');
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--drain-timeout', '600', '--tls-cert', pair.cert, '--tls-key', pair.key]);
    const silent = netConnect(router.port, '127.0.0.1');
    silent.on('error', () => undefined);
    await new Promise((r) => silent.once('connect', r));
    // a handshake still under way: (the handshake timeout is 66 s, the drain 600 s, the test's limit 30 s)
    const stopped = await router.stop('SIGTERM', 60_000);
    assert.equal(stopped.code, 0);
    silent.destroy();
  });
});

describe('TLS: router workers reload on SIGHUP to the primary', () => {
  it('each worker rereads the pair', async () => {
    const ca = makeTestCa();
    const pair = ca.issue('w');
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--workers', '2', '--tls-cert', pair.cert, '--tls-key', pair.key]);
    try {
      await router.waitForLog(() => router.logs.filter((l) => l.msg === 'router listening').length === 2);
      router.proc.kill('SIGHUP'); // the primary only
      await router.waitForLog(() => new Set(router.logs.filter((l) => l.msg === 'TLS certificate reloaded').map((l) => l.pid)).size === 2);
      assert.equal((await httpsCall(`https://127.0.0.1:${router.port}/health`, readFileSync(ca.caFile, 'utf8'))).status, 200);
    } finally {
      await router.stop();
    }
  });
});

describe('TLS: the registry over HTTPS', () => {
  let ca: TestCa;
  let registry: RunningService;
  let regUrl: string;
  before(async () => {
    ca = makeTestCa();
    const pair = ca.issue('registry');
    registry = await startRegistry(['--tls-cert', pair.cert, '--tls-key', pair.key]);
    regUrl = `https://127.0.0.1:${registry.port}`;
  });
  after(async () => {
    await registry.stop();
  });

  it('a mock registers and a router discovers it, both trusting the CA file', async () => {
    const [mock] = await startMocks([{ models: 'tls-model', name: 'mock-tls', args: ['--registry-url', regUrl, '--registry-ca', ca.caFile, '--heartbeat-interval', '0.5'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', regUrl, '--registry-ca', ca.caFile]);
    try {
      await mock.waitForLog((l) => l.msg === 'registered with registry');
      await waitFor(async () => {
        const r = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tls-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) });
        return r.status === 200;
      }, 'the router to route to the mock found through the HTTPS registry');
      // the feed over TLS carries a deregistration
      await mock.stop();
      await waitFor(async () => (await fetch(`${router.url}/v1/models`).then((r) => r.json()) as { data: unknown[] }).data.length === 0, 'the model to leave the router');
    } finally {
      await router.stop();
      if (mock.alive) await mock.stop();
    }
  });

  it('a babysitter registers its backend with --registry-ca', async () => {
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'tls-sitter', '--service-type', 'mock', '--args', 'sm', '--host', '127.0.0.1', '--registry-url', regUrl, '--registry-ca', ca.caFile, '--heartbeat-interval', '0.2']);
    try {
      await waitFor(async () => {
        const listing = JSON.parse((await httpsCall(`${regUrl}/services`, readFileSync(ca.caFile, 'utf8'))).text) as { services: Array<{ name: string }> };
        return listing.services.some((r) => r.name === 'tls-sitter-server');
      }, "the babysitter's record in the HTTPS registry");
    } finally {
      await sitter.stop();
    }
  });

  it('NODE_EXTRA_CA_CERTS is enough for a client, without the option', async () => {
    const mock = spawnCli(['mock', '--port', '0', '--models', 'extra', '--registry-url', regUrl], { env: { NODE_EXTRA_CA_CERTS: ca.caFile } });
    try {
      await mock.waitForLog((l) => l.msg === 'registered with registry');
    } finally {
      await mock.stop();
    }
  });

  it('`status` reads the HTTPS registry with --ca-file', async () => {
    const status = spawnCli(['status', '--registry-url', regUrl, '--router-url', 'http://127.0.0.1:9', '--ca-file', ca.caFile, '--json']);
    await status.exited;
    const rows = JSON.parse(status.stdout) as Array<{ service: string; up: boolean }>;
    assert.equal(rows.find((r) => /registry/.test(r.service))?.up, true, status.stdout);
  });

  it('a client without the CA refuses the certificate: a clear line in its log, no crash', async () => {
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', regUrl]);
    const mock = spawnCli(['mock', '--port', '0', '--models', 'x', '--registry-url', regUrl]);
    try {
      const line = await router.waitForLog((l) => l.msg === 'registry unreachable; serving the last known list');
      assert.match(String(line.err), /certificate/i);
      const refused = await mock.waitForLog((l) => l.msg === 'registration failed; will retry');
      assert.match(String(refused.err), /certificate/i);
      assert.ok(router.alive && mock.alive);
      assert.equal((await fetch(`${router.url}/health`)).status, 200);
    } finally {
      await router.stop();
      await mock.stop();
    }
  });

  it('SIGHUP reloads the registry\'s certificate for new connections', async () => {
    const one = ca.issue('reg-one');
    const two = ca.issue('reg-two');
    const live = { cert: `${ca.dir}/reg-live.pem`, key: `${ca.dir}/reg-live.key` };
    copyFileSync(one.cert, live.cert);
    copyFileSync(one.key, live.key);
    const reg = await startRegistry(['--tls-cert', live.cert, '--tls-key', live.key]);
    const caPem = readFileSync(ca.caFile, 'utf8');
    try {
      const before = await tlsConnect(reg.port, caPem);
      assert.equal(servedSerial(before), serialOf(readFileSync(one.cert, 'utf8')));
      before.destroy();
      copyFileSync(two.cert, live.cert);
      copyFileSync(two.key, live.key);
      reg.proc.kill('SIGHUP');
      await reg.waitForLog((l) => l.msg === 'TLS certificate reloaded');
      const after = await tlsConnect(reg.port, caPem);
      assert.equal(servedSerial(after), serialOf(readFileSync(two.cert, 'utf8')));
      after.destroy();
      assert.equal((await httpsCall(`https://127.0.0.1:${reg.port}/health`, caPem)).status, 200);
    } finally {
      await reg.stop();
    }
  });

  it('a certificate file that is missing or does not match its key stops the start with a clear error', async () => {
    const a = ca.issue('a');
    const b = ca.issue('b');
    const mismatched = spawnCli(['registry', '--port', '0', '--no-persist', '--tls-cert', a.cert, '--tls-key', b.key]);
    assert.notEqual((await mismatched.exited).code, 0);
    assert.match(mismatched.stderrText, /a\.pem with key .*b\.key/);
    const missing = spawnCli(['router', '--router-port', '0', '--tls-cert', `${ca.dir}/none.pem`, '--tls-key', a.key]);
    assert.notEqual((await missing.exited).code, 0);
    assert.match(missing.stderrText, /none\.pem: not found/);
    const half = spawnCli(['router', '--router-port', '0', '--tls-cert', a.cert]);
    assert.notEqual((await half.exited).code, 0);
    assert.match(half.stderrText, /--tls-cert and --tls-key go together/);
    const noCa = spawnCli(['router', '--router-port', '0', '--registry-url', regUrl, '--registry-ca', `${ca.dir}/none-ca.pem`]);
    assert.notEqual((await noCa.exited).code, 0);
    assert.match(noCa.stderrText, /--registry-ca .*none-ca\.pem: not found/);
    const notPem = spawnCli(['status', '--registry-url', regUrl, '--ca-file', a.key]);
    assert.notEqual((await notPem.exited).code, 0);
    assert.match(notPem.stderrText, /--ca-file .*a\.key: no PEM certificate in it/);
  });
});

describe('TLS: a backend served over HTTPS', () => {
  it('is proxied, health-checked and scraped for engine signals over TLS, trusting NODE_EXTRA_CA_CERTS', async () => {
    const ca = makeTestCa();
    const pair = ca.issue('engine');
    const seen = { metrics: 0, chats: 0 };
    // a vLLM-like engine: models, health, its gauges, and a chat answer
    const engine = createHttpsServer({ cert: readFileSync(pair.cert), key: readFileSync(pair.key) }, (req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/metrics') {
          seen.metrics++;
          res.end('vllm:num_requests_waiting{model_name="tls-engine"} 2\nvllm:num_requests_running{model_name="tls-engine"} 1\nvllm:kv_cache_usage_perc{model_name="tls-engine"} 0.5\n');
        } else if (req.url === '/v1/models') {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ object: 'list', data: [{ id: 'tls-engine', object: 'model' }] }));
        } else if (req.url === '/v1/chat/completions') {
          seen.chats++;
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ id: 'c1', object: 'chat.completion', model: 'tls-engine', choices: [{ index: 0, message: { role: 'assistant', content: 'over tls' }, finish_reason: 'stop' }] }));
        } else res.end('{}');
      });
    });
    await new Promise<void>((r) => engine.listen(0, '127.0.0.1', r));
    const port = (engine.address() as AddressInfo).port;
    const env = { NODE_EXTRA_CA_CERTS: ca.caFile };
    const registry = await startRegistry([], { env });
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', registry.url, '--policy', 'cache-load', '--engine-metrics-interval', '0.1', '--health-interval', '0.2'], { env });
    try {
      const record = { name: 'tls-engine', host: '127.0.0.1', port, url: `https://127.0.0.1:${port}`, status: 'running', metadata: { type: 'openai-api', models: ['tls-engine'] } };
      assert.equal((await http('POST', `${registry.url}/services`, { body: record })).status, 201);
      const chat = { model: 'tls-engine', messages: [{ role: 'user', content: 'hi' }] };
      await waitFor(async () => (await http('POST', `${router.url}/v1/chat/completions`, { body: chat })).status === 200, 'a chat through the HTTPS backend');
      // many intervals of scrapes and health checks, none failing
      await waitFor(async () => (await metric(router.url, 'infini_router_engine_scrapes_total', 'result="ok"')) >= 10, 'ten engine scrapes over TLS', 15_000);
      assert.equal(await metric(router.url, 'infini_router_engine_scrapes_total', 'result="failed"'), 0);
      assert.ok(seen.metrics >= 10 && seen.chats >= 1, JSON.stringify(seen));
      const answer = await http('POST', `${router.url}/v1/chat/completions`, { body: chat });
      assert.equal(answer.body.choices[0].message.content, 'over tls');
    } finally {
      await router.stop();
      await registry.stop();
      await new Promise((r) => engine.close(r));
    }
  });
});
