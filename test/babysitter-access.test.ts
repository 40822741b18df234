import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from './helpers/test.js';
import { freePortPair, http, startRegistry, startService, waitFor, type RunningService } from './helpers/services.js';

/** Whether anything accepts a TCP connection at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('babysitter: /info details and bind address with a cluster token', () => {
  let registry: RunningService;
  let sitter: RunningService;
  before(async () => {
    registry = await startRegistry([], { env: { INFINI_REGISTRY_TOKEN: 'cluster-tok' } });
    const port = await freePortPair();
    sitter = await startService(['babysitter', '--port', String(port), '--name', 'guarded-sitter', '--service-type', 'mock', '--args', 'm1', '--host', '127.0.0.1', '--registry-url', registry.url, '--heartbeat-interval', '0.2'], {
      env: { INFINI_REGISTRY_TOKEN: 'cluster-tok' },
    });
    await waitFor(async () => (await http('GET', `${sitter.url}/health`)).status === 200, 'the backend to be ready', 20_000);
  });
  after(async () => {
    await Promise.all([sitter.stop(), registry.stop()]);
  });

  it('without the token: the summary only (no engine output, command or metadata)', async () => {
    const r = await http('GET', `${sitter.url}/info`);
    assert.equal(r.status, 200);
    assert.equal(r.body.state, 'ready');
    assert.equal(r.body.name, 'guarded-sitter');
    assert.deepEqual(r.body.models, ['m1']);
    for (const field of ['recent_logs', 'command', 'metadata']) assert.equal(r.body[field], undefined, field);
    assert.match(r.body.details, /withheld: send the cluster token/);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
  });

  it('with a wrong token: 403', async () => {
    const r = await http('GET', `${sitter.url}/info`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(r.status, 403);
    assert.match(r.body.error, /invalid bearer token/);
  });

  it('with the token: everything', async () => {
    const r = await http('GET', `${sitter.url}/info`, { headers: { authorization: 'Bearer cluster-tok' } });
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.body.recent_logs));
    assert.ok(Array.isArray(r.body.command));
    assert.equal(r.body.details, undefined);
  });

  it('listens on the address given (--host 127.0.0.1), not on every interface', async () => {
    assert.ok(await accepts('127.0.0.1', sitter.port));
    assert.equal(await accepts('127.0.0.2', sitter.port), false, 'another loopback address is not served');
  });
});

describe('babysitter: /info without a token configured', () => {
  it('shows everything, as before', async () => {
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'open-sitter', '--service-type', 'mock', '--args', 'm1', '--host', '127.0.0.1'], { env: { INFINI_REGISTRY_TOKEN: undefined } });
    const r = await http('GET', `${sitter.url}/info`);
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.body.recent_logs));
    assert.ok(Array.isArray(r.body.command));
    await sitter.stop();
  });
});
