/**
 * Client API keys with the real router: statuses and headers (401, 403, 404, 429), what reaches
 * the backend and the logs, /v1/models per key, admin endpoints, reloads (file change and SIGHUP)
 * without a restart, limits shared across --workers, and a stream in flight outliving a revoke.
 * The backend is a small HTTP server in this process that records what it was sent.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from './helpers/test.js';
import { http, startMocks, startService, tempDir, waitFor, writeStaticServices, type RunningService } from './helpers/services.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const chat = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 4, ...extra });

/** An OpenAI-ish backend that records every request's headers; a stream waits for `release()` before its end. */
class RecordingBackend {
  readonly seen: IncomingHttpHeaders[] = [];
  private server!: Server;
  private releases: Array<() => void> = [];
  port = 0;
  /** usage.total_tokens of every answer. */
  totalTokens = 40;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        this.seen.push(req.headers);
        if (req.url === '/health' || req.url === '/v1/models') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ object: 'list', data: [] }));
          return;
        }
        const parsed = JSON.parse(body || '{}');
        const usage = { prompt_tokens: 10, completion_tokens: this.totalTokens - 10, total_tokens: this.totalTokens };
        if (parsed.stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: 'first' } }] })}\n\n`);
          this.releases.push(() => {
            res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: 'last' } }], usage })}\n\n`);
            res.end('data: [DONE]\n\n');
          });
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'x', object: 'chat.completion', model: parsed.model, choices: [{ index: 0, message: { role: 'assistant', content: 'hi' } }], usage }));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get streamsWaiting(): number {
    return this.releases.length;
  }

  release(): void {
    for (const r of this.releases.splice(0)) r();
  }

  close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const KEYS = `
[[keys]]
name = "team-a"
key = "sk-test-team-a"
models = ["model-a"]
rpm = 3

[[keys]]
name = "ops"
key_sha256 = "${sha('sk-test-admin')}"
scope = "admin"

[[keys]]
name = "tokens"
key = "sk-test-tokens"
tpm = 100

[[keys]]
name = "one-at-a-time"
key = "sk-test-parallel"
max_parallel_requests = 1

[backend_key_env]
"echo*" = "ECHO_BACKEND_KEY"
`;

describe('router with API keys', () => {
  const backend = new RecordingBackend();
  let router: RunningService;
  let dir: string;
  let requestLog: string;
  before(async () => {
    await backend.start();
    dir = await tempDir('infini-keys-');
    const keys = join(dir, 'keys.toml');
    await writeFile(keys, KEYS);
    requestLog = join(dir, 'requests.log');
    const services = await writeStaticServices([{ name: 'echo', port: backend.port, models: ['model-a', 'model-b'] }], dir);
    router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', services, '--api-keys', keys, '--request-log', requestLog], {
      env: { ECHO_BACKEND_KEY: 'backend-own-secret', INFINI_API_KEYS: 'sk-from-env-0001' },
    });
  });
  after(async () => {
    await router.stop();
    await backend.close();
  });

  it('401 without a key or with an unknown one, in OpenAI\'s shape, never repeating the key', async () => {
    const none = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a') });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.type, 'invalid_request_error');
    assert.equal(none.body.error.code, 'invalid_api_key');
    assert.match(none.body.error.message, /You didn't provide an API key/);
    const wrong = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: bearer('sk-wrong-key-12345') });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error.message, /^Incorrect API key provided/);
    assert.ok(!wrong.text.includes('sk-wrong-key-12345'));
    // logged as refused under the client's own id
    const mine = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: { ...bearer('sk-wrong-key-12345'), 'x-request-id': 'refused-401-probe' } });
    assert.equal(mine.status, 401);
    const line = await waitFor(async () => (await readFile(requestLog, 'utf8').catch(() => '')).split('\n').find((l) => l.includes('"request_id":"refused-401-probe"')), 'the 401 in the request log');
    assert.deepEqual([JSON.parse(line).status, JSON.parse(line).end], [401, 'refused']);
    assert.equal((await http('GET', `${router.url}/v1/models`)).status, 401);
    assert.equal((await http('GET', `${router.url}/v1/models`, { headers: { 'x-api-key': 'sk-wrong-key-12345' } })).status, 401);
  });

  it('accepts Bearer and x-api-key; a model the key may not use is 404 model_not_found', async () => {
    const ok = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: bearer('sk-test-admin') });
    assert.equal(ok.status, 200);
    const viaHeader = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-b'), headers: { 'x-api-key': 'sk-test-admin' } });
    assert.equal(viaHeader.status, 200);
    const denied = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-b'), headers: bearer('sk-test-team-a') });
    assert.equal(denied.status, 404);
    assert.equal(denied.body.error.code, 'model_not_found');
    assert.equal(denied.body.error.param, 'model');
    // worded as for a model that does not exist: the key learns nothing of models it cannot see
    assert.match(denied.body.error.message, /does not exist or you do not have access to it/);
    const noModel = await http('POST', `${router.url}/v1/embeddings`, { body: { input: 'x' }, headers: bearer('sk-test-team-a') });
    assert.equal(noModel.status, 400);
  });

  it('INFINI_API_KEYS adds client keys to the file\'s', async () => {
    assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-b'), headers: bearer('sk-from-env-0001') })).status, 200);
    assert.equal((await http('GET', `${router.url}/stats`, { headers: bearer('sk-from-env-0001') })).status, 403);
  });

  it('/v1/models lists only the models of the key', async () => {
    const ids = async (key: string, path = '/v1/models') => ((await http('GET', `${router.url}${path}`, { headers: bearer(key) })).body.data as Array<{ id: string }>).map((m) => m.id).sort();
    assert.deepEqual(await ids('sk-test-team-a'), ['model-a']);
    assert.deepEqual(await ids('sk-test-team-a', '/models'), ['model-a']);
    assert.deepEqual(await ids('sk-test-admin'), ['model-a', 'model-b']);
    assert.deepEqual(await ids('sk-test-tokens'), ['model-a', 'model-b']);
  });

  it('admin endpoints refuse client keys; health, the dashboard page and /metrics stay open', async () => {
    for (const path of ['/stats', '/services', '/dashboard/api/snapshot', '/dashboard/api/traffic']) {
      assert.equal((await http('GET', `${router.url}${path}`)).status, 401, path);
      const client = await http('GET', `${router.url}${path}`, { headers: bearer('sk-test-team-a') });
      assert.equal(client.status, 403, path);
      assert.equal(client.body.error.code, 'insufficient_permissions');
      assert.equal((await http('GET', `${router.url}${path}`, { headers: bearer('sk-test-admin') })).status, 200, path);
    }
    for (const path of ['/health', '/status', '/metrics', '/dashboard', '/dashboard/app.js']) assert.equal((await http('GET', `${router.url}${path}`)).status, 200, path);
  });

  it('429 past requests per minute, with Retry-After and x-ratelimit-* headers; keyed answers carry them too', async () => {
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: bearer('sk-test-team-a') });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
      remaining.push(r.headers.get('x-ratelimit-remaining-requests')!);
      assert.match(r.headers.get('x-ratelimit-reset-requests')!, /^\d+(\.\d)?s$|^\d+m\d+s$/);
    }
    assert.deepEqual(remaining, ['2', '1', '0']);
    const limited = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: bearer('sk-test-team-a') });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'rate_limit_exceeded');
    assert.equal(limited.body.error.type, 'requests');
    assert.match(limited.body.error.message, /Limit 3, Used 3, Requested 1/);
    const retry = Number(limited.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 20, `retry-after ${retry}`);
    assert.equal(limited.headers.get('x-ratelimit-limit-requests'), '3');
    assert.equal(limited.headers.get('x-ratelimit-remaining-requests'), '0');
    // the refusal is in the request log under the id the client got, never routed
    const id = limited.headers.get('x-request-id')!;
    assert.ok(id, 'a refused request carries its id');
    const line = await waitFor(async () => (await readFile(requestLog, 'utf8').catch(() => '')).split('\n').find((l) => l.includes(`"request_id":"${id}"`)), 'the 429 in the request log');
    const rec = JSON.parse(line);
    assert.deepEqual([rec.status, rec.end, rec.attempts, rec.backend, rec.model], [429, 'refused', 0, null, 'model-a']);
    // another key is not affected
    assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: bearer('sk-test-admin') })).status, 200);
  });

  it('tokens per minute: max_tokens reserved, usage counted, too large refused', async () => {
    const tooLarge = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a', { max_tokens: 500 }), headers: bearer('sk-test-tokens') });
    assert.equal(tooLarge.status, 429);
    assert.equal(tooLarge.body.error.type, 'tokens');
    assert.equal(tooLarge.headers.get('retry-after'), null, 'waiting would not help');
    // each answer reports 40 tokens: 100 per minute allows two, and the third finds 20 left for a reservation of 12
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 4; i++) {
      last = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a', { max_tokens: 10 }), headers: bearer('sk-test-tokens') });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal(last!.body.error.type, 'tokens');
    assert.equal(last!.headers.get('x-ratelimit-limit-tokens'), '100');
    assert.ok(Number(last!.headers.get('retry-after')) >= 1);
  });

  it('requests in flight: the second waits for the first; a stream in flight is never cut', async () => {
    const stream = fetch(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer('sk-test-parallel') }, body: JSON.stringify(chat('model-a', { stream: true })) });
    await waitFor(() => backend.streamsWaiting === 1, 'the stream to start');
    const second = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: bearer('sk-test-parallel') });
    assert.equal(second.status, 429);
    assert.match(second.body.error.message, /max_parallel_requests/);
    backend.release();
    const res = await stream;
    const text = await res.text();
    assert.match(text, /first[\s\S]*last[\s\S]*\[DONE\]/);
    await waitFor(async () => (await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: bearer('sk-test-parallel') })).status === 200, 'the slot to be free again');
  });

  it("never forwards the client's key; the backend gets its own from backend_key_env", async () => {
    backend.seen.length = 0;
    await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: { 'x-api-key': 'sk-test-admin' } });
    await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a'), headers: bearer('sk-test-admin') });
    const proxied = backend.seen.filter((h) => h['content-type'] === 'application/json');
    assert.equal(proxied.length, 2);
    for (const h of proxied) {
      assert.equal(h['x-api-key'], undefined);
      assert.equal(h.authorization, 'Bearer backend-own-secret');
    }
  });

  it('no key in the request log or the router\'s own log', async () => {
    await waitFor(async () => (await readFile(requestLog, 'utf8').catch(() => '')).includes('"status":200'), 'request log lines');
    const logged = (await readFile(requestLog, 'utf8')) + router.stderrText + router.stdout;
    for (const secret of ['sk-from-env-0001', 'sk-test-team-a', 'sk-test-admin', 'sk-test-tokens', 'sk-test-parallel', 'sk-wrong-key-12345', 'backend-own-secret']) assert.ok(!logged.includes(secret), secret);
  });
});

describe('key reloads', () => {
  let mocks: RunningService[];
  let router: RunningService;
  let keysPath: string;
  const fileWith = (name: string, key: string) => `[[keys]]\nname = "${name}"\nkey_sha256 = "${sha(key)}"\n`;
  const status = async (key: string) => (await http('POST', `${router.url}/v1/chat/completions`, { body: chat('m'), headers: bearer(key) })).status;
  before(async () => {
    mocks = await startMocks([{ models: 'm' }]);
    const dir = await tempDir('infini-keys-reload-');
    keysPath = join(dir, 'keys.toml');
    await writeFile(keysPath, fileWith('first', 'sk-reload-one'));
    const services = await writeStaticServices([{ name: 'mock-a', port: mocks[0]!.port, models: ['m'] }], dir);
    router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', services, '--api-keys', keysPath]);
  });
  after(async () => {
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });

  it('a changed file takes effect without a restart: the revoked key stops, the new one works', async () => {
    assert.equal(await status('sk-reload-one'), 200);
    await writeFile(keysPath, fileWith('second', 'sk-reload-two'));
    await waitFor(async () => (await status('sk-reload-one')) === 401, 'the revoked key to be refused');
    assert.equal(await status('sk-reload-two'), 200);
  });

  it('a bad file keeps the keys in use and says why', async () => {
    const before = router.logs.length;
    await writeFile(keysPath, '[[keys]]\nname = "broken"\nrpm = -1\n');
    const line = await router.waitForLog((l, i = router.logs.indexOf(l)) => i >= before && l.msg === 'api keys not reloaded: keeping the previous keys');
    assert.match(String(line.err), /key 'broken'/);
    assert.equal(await status('sk-reload-two'), 200);
  });

  it('SIGHUP reloads the file (a router that does not poll it)', async () => {
    const dir = await tempDir('infini-keys-sighup-');
    const path = join(dir, 'keys.toml');
    await writeFile(path, fileWith('third', 'sk-reload-333'));
    const services = await writeStaticServices([{ name: 'mock-a', port: mocks[0]!.port, models: ['m'] }], dir);
    const quiet = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', services, '--api-keys', path, '--api-keys-poll', '0']);
    try {
      const at = async (key: string) => (await http('POST', `${quiet.url}/v1/chat/completions`, { body: chat('m'), headers: bearer(key) })).status;
      assert.equal(await at('sk-reload-333'), 200);
      await writeFile(path, fileWith('fourth', 'sk-reload-444'));
      assert.equal(await at('sk-reload-444'), 401, 'not polled: nothing changes before the signal');
      process.kill(quiet.proc.pid!, 'SIGHUP');
      await quiet.waitForLog((l) => l.msg === 'api keys reloaded' && l.reason === 'SIGHUP');
      assert.equal(await at('sk-reload-444'), 200);
      assert.equal(await at('sk-reload-333'), 401);
      assert.ok(quiet.alive, 'SIGHUP does not stop the router');
    } finally {
      await quiet.stop();
    }
  });
});

describe('limits with --workers', () => {
  let mocks: RunningService[];
  let router: RunningService;
  let keysPath: string;
  before(async () => {
    mocks = await startMocks([{ models: 'm' }]);
    const dir = await tempDir('infini-keys-workers-');
    keysPath = join(dir, 'keys.json');
    await writeFile(keysPath, JSON.stringify({ keys: [{ name: 'w', key: 'sk-workers-1', rpm: 4 }, { name: 'prometheus', key: 'sk-scraper-1', scope: 'admin' }] }));
    const services = await writeStaticServices([{ name: 'mock-a', port: mocks[0]!.port, models: ['m'] }], dir);
    router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', services, '--api-keys', keysPath, '--api-keys-poll', '0', '--workers', '2', '--metrics-auth']);
    await router.waitForLog((l) => l.msg === 'router listening' && router.logs.filter((x) => x.msg === 'router listening').length >= 2);
  });
  after(async () => {
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });

  it('a key\'s limit holds for the router as a whole, whichever worker answers', async () => {
    const statuses: number[] = [];
    // a new connection each time: the workers take turns
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close', ...bearer('sk-workers-1') }, body: JSON.stringify(chat('m')) });
      await res.text();
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
  });

  it('--metrics-auth: /metrics needs an admin key', async () => {
    assert.equal((await http('GET', `${router.url}/metrics`)).status, 401);
    assert.equal((await http('GET', `${router.url}/metrics`, { headers: bearer('sk-workers-1') })).status, 403);
    const scraped = await http('GET', `${router.url}/metrics`, { headers: bearer('sk-scraper-1') });
    assert.equal(scraped.status, 200);
    assert.match(scraped.text, /infini_router_/);
    assert.equal((await http('GET', `${router.url}/health`)).status, 200);
  });

  it('SIGHUP to the primary reloads the keys of every worker', async () => {
    await writeFile(keysPath, JSON.stringify({ keys: [{ name: 'w2', key: 'sk-workers-2' }] }));
    process.kill(router.proc.pid!, 'SIGHUP');
    await waitFor(() => router.logs.filter((l) => l.msg === 'api keys reloaded' && l.reason === 'SIGHUP').length >= 2, 'both workers to reload');
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close', ...bearer('sk-workers-2') }, body: JSON.stringify(chat('m')) });
      await res.text();
      assert.equal(res.status, 200);
    }
  });
});
