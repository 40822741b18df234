import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, it } from './helpers/test.js';
import { http, metric, startRegistry, type RunningService } from './helpers/services.js';

/** A registration whose url is `url` and whose host is `host` (127.0.0.1 unless given). */
function reg(name: string, url: string, host = '127.0.0.1') {
  return { name, host, port: 9000, hostname: host, url, status: 'running', metadata: { type: 'openai-api', models: ['m'] } };
}

/** A POST (to /services unless `path`) from a chosen local address: the registry limits per client address. */
function postFrom(localAddress: string, agent: Agent, base: string, body: unknown, path = '/services'): Promise<{ status: number; retryAfter: string | undefined; error: string }> {
  const u = new URL(path, base);
  const text = body === undefined ? '' : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', localAddress, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'] as string | undefined, error: (JSON.parse(data || '{}') as { error?: string }).error ?? '' }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

describe('registry: service addresses (table of URL forms)', () => {
  let registry: RunningService;
  before(async () => {
    registry = await startRegistry();
  });
  after(async () => {
    await registry.stop();
  });

  // [url, host, expected status, what the error names]
  const table: Array<[string, string, number, RegExp | undefined]> = [
    ['http://127.0.0.1:9000', '127.0.0.1', 201, undefined],
    ['http://localhost:9000', 'localhost', 201, undefined],
    ['http://10.0.0.5:8000/v1', '10.0.0.5', 201, undefined],
    ['https://192.168.1.20', '192.168.1.20', 201, undefined],
    ['http://172.20.0.3:8000', '172.20.0.3', 201, undefined],
    ['http://[::1]:9000', '::1', 201, undefined],
    ['http://[fd00::12]:9000', 'fd00::12', 201, undefined],
    ['http://gpu-01.rack-3.example.com:8000', 'gpu-01.rack-3.example.com', 201, undefined],
    ['http://169.254.169.254/latest/meta-data', '127.0.0.1', 400, /field 'url' refused \(metadata\): 169\.254\.169\.254 is a cloud metadata address/],
    ['http://2852039166/', '127.0.0.1', 400, /\(metadata\).*169\.254\.169\.254/],
    ['http://0xa9fea9fe/', '127.0.0.1', 400, /\(metadata\).*169\.254\.169\.254/],
    ['http://0251.0376.0251.0376/', '127.0.0.1', 400, /\(metadata\).*169\.254\.169\.254/],
    ['http://169.254.43518/', '127.0.0.1', 400, /\(metadata\).*169\.254\.169\.254/],
    ['http://[::ffff:169.254.169.254]/', '127.0.0.1', 400, /\(metadata\).*\(169\.254\.169\.254\)/],
    ['http://[::ffff:a9fe:a9fe]/', '127.0.0.1', 400, /\(metadata\)/],
    ['http://[fd00:ec2::254]/', '127.0.0.1', 400, /\(metadata\): fd00:ec2::254/],
    ['http://100.100.100.200/', '127.0.0.1', 400, /\(metadata\): 100\.100\.100\.200/],
    ['http://metadata.google.internal/computeMetadata/v1/', '127.0.0.1', 400, /\(metadata\): 'metadata\.google\.internal' is a cloud metadata service/],
    ['http://metadata/', '127.0.0.1', 400, /\(metadata\)/],
    ['http://169.254.10.20:8000', '127.0.0.1', 400, /\(link-local\): 169\.254\.10\.20 is a link-local address/],
    ['http://[fe80::1]:8000', '127.0.0.1', 400, /\(link-local\): fe80::1/],
    ['http://0.0.0.0:8000', '127.0.0.1', 400, /\(unspecified\): 0\.0\.0\.0/],
    ['http://[::]:8000', '127.0.0.1', 400, /\(unspecified\): ::/],
    ['http://224.0.0.251:5353', '127.0.0.1', 400, /\(multicast\)/],
    ['http://[ff02::1]:8000', '127.0.0.1', 400, /\(multicast\)/],
    ['http://255.255.255.255:8000', '127.0.0.1', 400, /\(broadcast\)/],
    ['ftp://10.0.0.5/', '10.0.0.5', 400, /field 'url' must be an http:\/\/ or https:\/\/ URL/],
    ['gopher://127.0.0.1:6379/_', '127.0.0.1', 400, /http:\/\/ or https:\/\//],
    // the host is where the registry probes an openai-api record's babysitter: checked as well
    ['http://127.0.0.1:9000', '169.254.169.254', 400, /field 'host' refused \(metadata\)/],
    ['http://127.0.0.1:9000', '0xa9fea9fe', 400, /field 'host' refused \(metadata\)/],
    ['http://127.0.0.1:9000', 'fe80::1%eth0', 400, /field 'host' refused \(link-local\)/],
  ];
  table.forEach(([url, host, status, why], i) => {
    it(`${status === 201 ? 'accepts' : 'refuses'} url ${url} host ${host}`, async () => {
      const r = await http('POST', `${registry.url}/services`, { body: reg(`form-${i}`, url, host) });
      assert.equal(r.status, status, r.text);
      if (why) assert.match(r.body.error, why);
    });
  });

  it('counts the refusals (/metrics) and logs them', async () => {
    // the schemes are refused by validation before the guard
    const refusedForms = table.filter(([url, , status]) => status === 400 && url.startsWith('http')).length;
    assert.equal(await metric(registry.url, 'infini_registry_refused_total', 'reason="address"'), refusedForms);
    const line = await registry.waitForLog((l) => l.msg === 'registration refused: service address' && String(l.reason).includes('metadata'));
    assert.equal(line.client, '127.0.0.1');
  });

  it('checks updates too, and keeps the record as it was', async () => {
    assert.equal((await http('POST', `${registry.url}/services`, { body: reg('moved', 'http://127.0.0.1:9100') })).status, 201);
    const r = await http('PUT', `${registry.url}/services/moved`, { body: { url: 'http://0xa9fea9fe/' } });
    assert.equal(r.status, 400);
    assert.match(r.body.error, /field 'url' refused \(metadata\)/);
    assert.equal((await http('GET', `${registry.url}/services/moved`)).body.url, 'http://127.0.0.1:9100');
  });
});

describe('registry: --allow-networks / --deny-networks', () => {
  let registry: RunningService;
  before(async () => {
    registry = await startRegistry(['--allow-networks', '10.0.0.0/8,fd00::/8,127.0.0.0/8', '--deny-networks', '10.9.0.0/16']);
  });
  after(async () => {
    await registry.stop();
  });

  it('allows only the listed blocks, the denied one refused', async () => {
    const cases: Array<[string, string, number, RegExp | undefined]> = [
      ['http://10.1.2.3:8000', '10.1.2.3', 201, undefined],
      ['http://[fd00::7]:8000', 'fd00::7', 201, undefined],
      ['http://10.9.1.1:8000', '10.9.1.1', 400, /\(deny-networks\): 10\.9\.1\.1 is in 10\.9\.0\.0\/16/],
      ['http://[::ffff:10.9.1.1]:8000', '10.1.2.3', 400, /\(deny-networks\)/],
      ['http://192.168.1.1:8000', '10.1.2.3', 400, /\(allow-networks\): 192\.168\.1\.1 is outside --allow-networks/],
      ['http://10.1.2.3:8000', '192.168.1.1', 400, /field 'host' refused \(allow-networks\)/],
    ];
    for (const [i, [url, host, status, why]] of cases.entries()) {
      const r = await http('POST', `${registry.url}/services`, { body: reg(`net-${i}`, url, host) });
      assert.equal(r.status, status, `${url}: ${r.text}`);
      if (why) assert.match(r.body.error, why);
    }
  });

  it('refuses a bad block at start, naming it', async () => {
    await assert.rejects(startRegistry(['--deny-networks', '10.0.0.0/99']), /--deny-networks: '10\.0\.0\.0\/99' is not a CIDR block/);
  });
});

describe('registry: flood caps', () => {
  it('caps the records in all (--max-services): new names get 429, re-registrations pass', async () => {
    const registry = await startRegistry(['--max-services', '3']);
    for (let i = 0; i < 3; i++) assert.equal((await http('POST', `${registry.url}/services`, { body: reg(`cap-${i}`, 'http://127.0.0.1:9000') })).status, 201);
    const over = await http('POST', `${registry.url}/services`, { body: reg('cap-3', 'http://127.0.0.1:9000') });
    assert.equal(over.status, 429);
    assert.match(over.body.error, /maximum of 3 services \(--max-services\); 'cap-3' was not registered/);
    assert.equal(await metric(registry.url, 'infini_registry_refused_total', 'reason="max_services"'), 1);
    assert.ok(Number(over.headers.get('retry-after')) > 0);
    assert.equal((await http('POST', `${registry.url}/services`, { body: reg('cap-1', 'http://127.0.0.1:9001') })).status, 201, 'a record may re-register');
    assert.equal((await http('DELETE', `${registry.url}/services/cap-0`)).status, 200);
    assert.equal((await http('POST', `${registry.url}/services`, { body: reg('cap-3', 'http://127.0.0.1:9000') })).status, 201, 'room again');
    await registry.stop();
  });

  it('limits requests per client address: 429 with Retry-After past the burst; heartbeats and other clients keep their own budgets', async () => {
    // 0.1 per second: no token comes back while the test runs
    const registry = await startRegistry(['--rate-limit', '0.1', '--rate-burst', '5']);
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    assert.equal((await http('POST', `${registry.url}/services`, { body: reg('known', 'http://127.0.0.1:9000') })).status, 201);
    const flood = await Promise.all(Array.from({ length: 40 }, (_, i) => postFrom('127.0.0.9', agent, registry.url, reg(`flood-${i}`, 'http://127.0.0.1:9000'))));
    const ok = flood.filter((r) => r.status === 201).length;
    const limited = flood.filter((r) => r.status === 429);
    assert.equal(ok, 5, 'the burst got through, nothing more');
    assert.equal(ok + limited.length, 40);
    for (const r of limited) {
      assert.ok(Number(r.retryAfter) >= 1 && Number(r.retryAfter) <= 10, `Retry-After ${r.retryAfter}`);
      assert.match(r.error, /too many requests from 127\.0\.0\.9: over 0\.1 per second \(--rate-limit, burst 5\); retry after \d+ s/);
    }
    // the flooder's neighbours: another address, and heartbeats (their own budget) from the flooder's
    assert.equal((await http('POST', `${registry.url}/services`, { body: reg('neighbour', 'http://127.0.0.1:9000') })).status, 201);
    assert.equal((await postFrom('127.0.0.9', agent, registry.url, undefined, '/services/known/heartbeat')).status, 200);
    assert.equal((await postFrom('127.0.0.9', agent, registry.url, reg('more', 'http://127.0.0.1:9000'))).status, 429, 'still limited');
    assert.equal((await http('GET', `${registry.url}/health`)).status, 200, '/health is never limited');
    assert.equal(await metric(registry.url, 'infini_registry_refused_total', 'reason="rate_limit"'), 36);
    agent.destroy();
    await registry.stop();
  });
});

describe('registry: a token guards heartbeats and deregistration as every mutation', () => {
  let registry: RunningService;
  const auth = { authorization: 'Bearer tok' };
  before(async () => {
    registry = await startRegistry([], { env: { INFINI_REGISTRY_TOKEN: 'tok' } });
    assert.equal((await http('POST', `${registry.url}/services`, { body: reg('guarded', 'http://127.0.0.1:9000'), headers: auth })).status, 201);
  });
  after(async () => {
    await registry.stop();
  });

  for (const [method, path, body] of [['POST', '/services/guarded/heartbeat', undefined], ['PUT', '/services/guarded', { status: 'running' }], ['DELETE', '/services/guarded', undefined]] as const) {
    it(`${method} ${path}: 401 without the token, 403 with a wrong one`, async () => {
      const none = await http(method, `${registry.url}${path}`, { body });
      assert.equal(none.status, 401);
      assert.match(none.body.error, /missing Authorization: Bearer token/);
      const wrong = await http(method, `${registry.url}${path}`, { body, headers: { authorization: 'Bearer nope' } });
      assert.equal(wrong.status, 403);
    });
  }

  it('with the token: heartbeat, then deregistration', async () => {
    assert.equal((await http('POST', `${registry.url}/services/guarded/heartbeat`, { headers: auth })).status, 200);
    assert.equal((await http('DELETE', `${registry.url}/services/guarded`, { headers: auth })).status, 200);
  });
});
