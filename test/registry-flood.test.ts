import assert from 'node:assert/strict';
import { after, before, describe, it } from './helpers/test.js';
import { http, startMocks, startRegistry, startService, waitFor, type RunningService } from './helpers/services.js';

const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };

describe('registry flood: existing services stay routable', () => {
  let registry: RunningService;
  let mock: RunningService;
  let router: RunningService;
  before(async () => {
    registry = await startRegistry(['--rate-limit', '20', '--rate-burst', '20', '--max-services', '10', '--heartbeat-timeout', '2']);
    // heartbeats from the same address as the flood below: they have a budget of their own
    [mock] = await startMocks([{ models: 'm', name: 'real-fleet', args: ['--registry-url', registry.url, '--heartbeat-interval', '0.2'] }]);
    router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', registry.url]);
    await waitFor(async () => (await http('POST', `${router.url}/v1/chat/completions`, { body: chat })).status === 200, 'the mock to be routable');
  });
  after(async () => {
    await Promise.all([router.stop(), mock.stop(), registry.stop()]);
  });

  it('a flood of registrations gets 429s and the full registry, while requests keep being routed and heartbeats keep the record healthy', async () => {
    const statuses = new Map<number, number>();
    let flooding = true;
    const flood = (async () => {
      for (let round = 0; flooding || round < 10; round++) {
        const batch = await Promise.all(
          Array.from({ length: 16 }, (_, i) =>
            http('POST', `${registry.url}/services`, { body: { name: `flood-${round}-${i}`, host: '127.0.0.1', port: 9, hostname: '127.0.0.1', url: 'http://127.0.0.1:9', status: 'running' } }),
          ),
        );
        for (const r of batch) {
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status === 429) assert.ok(Number(r.headers.get('retry-after')) >= 1);
        }
        if (round >= 200) break;
      }
    })();
    // for longer than several heartbeat timeouts (2 s): a starved heartbeat would turn the record unhealthy
    const until = Date.now() + 5_000;
    let routed = 0;
    while (Date.now() < until) {
      const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat });
      assert.equal(r.status, 200, r.text);
      routed++;
    }
    flooding = false;
    await flood;
    assert.ok(routed > 0);
    assert.ok((statuses.get(429) ?? 0) > 100, `the flood was limited: ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get(201) ?? 0) <= 9, 'never more records than --max-services');
    const rec = await http('GET', `${registry.url}/services/real-fleet`);
    assert.equal(rec.status, 200);
    assert.equal(rec.body.is_healthy, true);
    assert.ok((await http('GET', `${registry.url}/health`)).body.registered_services <= 10);
  });
});
