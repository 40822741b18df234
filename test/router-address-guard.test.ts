import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from './helpers/test.js';
import { AddressGuard } from '../src/common/address-guard.js';
import { probeGuard } from '../src/common/guarded-lookup.js';
import { checkHttp } from '../src/common/http-probe.js';
import { UpstreamPool } from '../src/router/upstream/pool.js';
import { http, metric, ROOT, startMocks, startRegistry, startService, tempDir, waitFor, type RunningService } from './helpers/services.js';

const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };

function record(name: string, host: string, port: number) {
  return { name, host, port, hostname: host, url: `http://${host}:${port}`, status: 'running', metadata: { type: 'openai-api', models: ['m'] } };
}

async function backendInfo(router: RunningService, name: string): Promise<any> {
  const services = (await http('GET', `${router.url}/services`)).body?.services as any[] | undefined;
  return services?.find((s) => s.name === name);
}

describe('router: a backend name that resolves to a denied address', () => {
  let registry: RunningService;
  let mock: RunningService;
  let router: RunningService;
  before(async () => {
    registry = await startRegistry();
    [mock] = await startMocks([{ models: 'm', name: 'behind-localhost' }]);
    // the registry takes a name (it does not resolve it); the router judges what it resolves to
    assert.equal((await http('POST', `${registry.url}/services`, { body: record('named', 'localhost', mock!.port) })).status, 201);
    router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', registry.url, '--deny-networks', '127.0.0.0/8,::1/128', '--health-interval', '600']);
  });
  after(async () => {
    await Promise.all([router.stop(), mock.stop(), registry.stop()]);
  });

  it('is never connected to: its check fails without a probe, and requests are not sent there', async () => {
    const line = await router.waitForLog((l) => l.backend === 'named' && typeof l.msg === 'string' && l.msg.includes('address refused'));
    assert.match(String(line.reason), /localhost resolves to (127\.0\.0\.1|::1), refused \(deny-networks\)/);
    await waitFor(async () => (await backendInfo(router, 'named'))?.check_ok === false, 'the check to fail');
    const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.error.code, 'no_healthy_backend');
  });
});

describe('router: DNS rebinding after the backend was checked', () => {
  let registry: RunningService;
  let mock: RunningService;
  let router: RunningService;
  let flag: string;
  before(async () => {
    flag = join(await tempDir('infini-rebind-'), 'rebound');
    registry = await startRegistry();
    // each request takes a while, so that concurrent ones need connections of their own
    [mock] = await startMocks([{ models: 'm', name: 'rebind-target', args: ['--ttft-ms', '300'] }]);
    assert.equal((await http('POST', `${registry.url}/services`, { body: record('rebinder', 'rebind.test', mock!.port) })).status, 201);
    const fixture = pathToFileURL(join(ROOT, 'test', 'fixtures', 'rebind-dns.mjs')).href;
    router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', registry.url, '--deny-networks', '127.0.0.3/32', '--health-interval', '600'], {
      env: { NODE_OPTIONS: `--import=${fixture}`, REBIND_FLAG_FILE: flag, REBIND_TO: '127.0.0.3' },
    });
  });
  after(async () => {
    await Promise.all([router.stop(), mock.stop(), registry.stop()]);
  });

  it('refuses new connections to the new address: 502 naming it, counted, and the backend ejected', async () => {
    await waitFor(async () => (await backendInfo(router, 'rebinder'))?.healthy === true, 'the backend to be routable');
    assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: chat })).status, 200, 'reachable while it resolves to an allowed address');
    await writeFile(flag, '');
    const answers = await Promise.all(Array.from({ length: 5 }, () => http('POST', `${router.url}/v1/chat/completions`, { body: chat })));
    const refused = answers.filter((a) => a.status === 502);
    assert.ok(refused.length >= 1, `some requests needed a new connection: ${answers.map((a) => a.status)}`);
    for (const a of answers) assert.ok(a.status === 200 || a.status === 502 || a.status === 503, `status ${a.status}`);
    for (const a of refused) {
      assert.equal(a.body.error.code, 'upstream_address_refused');
      assert.match(a.body.error.message, /refused by the router's network policy/);
    }
    assert.ok((await metric(router.url, 'infini_router_upstream_failures_total', 'kind="address_refused"')) >= 1);
    const line = await router.waitForLog((l) => l.backend === 'rebinder' && l.msg === 'backend address refused by the network policy');
    assert.match(String(line.reason), /rebind\.test resolves to 127\.0\.0\.3, refused \(deny-networks\): 127\.0\.0\.3 is in 127\.0\.0\.3\/32/);
    // not retried request after request: ejected at once
    assert.equal((await backendInfo(router, 'rebinder'))?.healthy, false);
    const after = await http('POST', `${router.url}/v1/chat/completions`, { body: chat });
    assert.equal(after.status, 503, after.text);
  });
});

describe('health probes under the guard (registry prober, router checks)', () => {
  let server: Server;
  let base: string;
  before(async () => {
    // /health redirects where a registration could never point
    server = createServer((req, res) => {
      if (req.url === '/meta') res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      else if (req.url === '/hex') res.writeHead(302, { location: 'http://0xa9fea9fe/' }).end();
      else res.writeHead(200).end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('do not follow a redirect to a refused address, in any spelling', async () => {
    const g = probeGuard(new AddressGuard());
    assert.equal(await checkHttp(`${base}/ok`, 2000, g), 200);
    assert.equal(await checkHttp(`${base}/meta`, 2000, g), 'error');
    assert.equal(await checkHttp(`${base}/hex`, 2000, g), 'error');
  });

  it('refuse a name that resolves to a denied address, and a denied literal', async () => {
    const g = probeGuard(new AddressGuard({ deny: ['127.0.0.0/8', '::1/128'] }));
    const port = (server.address() as AddressInfo).port;
    assert.equal(await checkHttp(`http://localhost:${port}/ok`, 2000, g), 'error');
    assert.equal(await checkHttp(`${base}/ok`, 2000, g), 'error');
    assert.equal(await checkHttp(`${base}/ok`, 2000), 200, 'without a guard, as before');
  });
});

describe('upstream pool under the guard', () => {
  const opts = { connectTimeoutMs: 2000, headersTimeoutMs: 2000, idleTimeoutMs: 2000, keepAliveMs: 1000 };
  /** One GET through a pool for `origin`; resolves with the status or the error's code and message. */
  function once(origin: string, guard: AddressGuard): Promise<{ status?: number; code?: string; message?: string; size: number }> {
    const pool = UpstreamPool.forOrigin(new URL(origin), { ...opts, guard });
    return new Promise((resolve) => {
      pool.request('GET /ok HTTP/1.1\r\nhost: x\r\n\r\n', undefined, false, {
        onHeaders: (head) => resolve({ status: head.status, size: pool.size }),
        onData: () => true,
        onComplete: () => pool.destroy(),
        onError: (err) => {
          resolve({ code: (err as NodeJS.ErrnoException).code, message: err.message, size: pool.size });
          pool.destroy();
        },
      });
    });
  }
  let server: Server;
  let port: number;
  before(async () => {
    server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('fails a refused literal without connecting, naming the rule; an allowed one connects', async () => {
    const denied = await once(`http://127.0.0.1:${port}`, new AddressGuard({ deny: ['127.0.0.0/8'] }));
    assert.equal(denied.code, 'UPSTREAM_ADDRESS_REFUSED');
    assert.match(denied.message!, /backend address refused \(deny-networks\): 127\.0\.0\.1 is in 127\.0\.0\.0\/8/);
    assert.equal(denied.size, 0, 'the connection is gone');
    assert.equal((await once(`http://127.0.0.1:${port}`, new AddressGuard())).status, 200);
    assert.equal((await once(`http://[::ffff:169.254.169.254]:${port}`, new AddressGuard())).code, 'UPSTREAM_ADDRESS_REFUSED');
  });

  it('resolves a name through the guard at connect time', async () => {
    const denied = await once(`http://localhost:${port}`, new AddressGuard({ deny: ['127.0.0.0/8', '::1/128'] }));
    assert.equal(denied.code, 'UPSTREAM_ADDRESS_REFUSED');
    assert.match(denied.message!, /localhost resolves to/);
    assert.equal((await once(`http://localhost:${port}`, new AddressGuard({ deny: ['::1/128'] }))).status, 200, 'an allowed address of the name is used');
  });
});
