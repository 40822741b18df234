/**
 * The registry's Prometheus metrics, against a real registry on 127.0.0.1: every metric is there
 * with its labels, and each moves when its event happens.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from './helpers/test.js';
import { http, SseReader, startRegistry, startService, tempDir, waitFor, type RunningService } from './helpers/services.js';

type Samples = Array<{ name: string; labels: Record<string, string>; value: number }>;

async function scrape(base: string): Promise<Samples> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const out: Samples = [];
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of one sample (0 when absent), its labels matched exactly. */
function value(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const want = JSON.stringify(Object.entries(labels).sort());
  const s = samples.find((x) => x.name === name && JSON.stringify(Object.entries(x.labels).sort()) === want);
  return s?.value ?? 0;
}

const has = (samples: Samples, name: string, labels: Record<string, string> = {}) =>
  samples.some((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));

/** Answers `/<name>/health` with 200 for names starting with "ok", 500 otherwise. */
async function healthServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => res.writeHead((req.url ?? '').startsWith('/ok') ? 200 : 500).end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as import('node:net').AddressInfo).port };
}

const reg = (name: string, port: number, metadata: Record<string, unknown> = { type: 'worker' }) => ({
  name, host: '127.0.0.1', port, hostname: '127.0.0.1', url: `http://127.0.0.1:${port}/${name}`, status: 'running', metadata,
});

describe('registry metrics', () => {
  let registry: RunningService;
  let target: { server: Server; port: number };
  let base: string;

  before(async () => {
    target = await healthServer();
    const dir = await tempDir();
    registry = await startService(['registry', '--port', '0', '--host', '127.0.0.1', '--state-file', join(dir, 'state.json'), '--health-interval', '0.2', '--health-timeout', '2']);
    base = registry.url;
  });

  after(async () => {
    await registry?.stop();
    target?.server.close();
  });

  it('lists every metric with its labels, and the process metrics', async () => {
    await http('POST', `${base}/services`, { body: reg('ok-listed', target.port) });
    const s = await scrape(base);
    for (const name of [
      'infini_registry_registrations_total', 'infini_registry_deregistrations_total', 'infini_registry_heartbeats_total',
      'infini_registry_evictions_total', 'infini_registry_feed_subscribers', 'infini_registry_state_writes_total',
      'infini_registry_state_write_duration_seconds_count', 'infini_registry_process_cpu_seconds_total', 'infini_registry_process_resident_memory_bytes',
    ]) assert.ok(has(s, name), `${name} missing`);
    assert.ok(has(s, 'infini_registry_services', { type: 'worker', health: 'healthy' }));
    assert.ok(has(s, 'infini_registry_services', { type: 'worker', health: 'unhealthy' }));
    for (const result of ['ok', 'failed', 'inconclusive']) assert.ok(has(s, 'infini_registry_health_probes_total', { result }), `probe result ${result}`);
    for (const type of ['put', 'delete', 'health']) assert.ok(has(s, 'infini_registry_feed_events_total', { type }), `feed type ${type}`);
    assert.ok(has(s, 'infini_registry_state_write_duration_seconds_bucket', { le: '0.0005' }));
    assert.ok(has(s, 'infini_registry_state_write_duration_seconds_bucket', { le: '5' }));
  });

  it('counts registrations, heartbeats, deregistrations, services by type, feed events and state writes', async () => {
    const before = await scrape(base);
    const feed = await SseReader.open(`${base}/events`);
    try {
      await waitFor(async () => value(await scrape(base), 'infini_registry_feed_subscribers') >= 1, 'a feed subscriber');
      assert.equal((await http('POST', `${base}/services`, { body: reg('ok-a', target.port, { type: 'embedder' }) })).status, 201);
      assert.equal((await http('POST', `${base}/services`, { body: reg('ok-b', target.port, {}) })).status, 201);
      await feed.next((e) => e.type === 'put' && e.service?.name === 'ok-b');
      let s = await scrape(base);
      assert.equal(value(s, 'infini_registry_registrations_total'), value(before, 'infini_registry_registrations_total') + 2);
      assert.equal(value(s, 'infini_registry_services', { type: 'embedder', health: 'healthy' }), 1);
      assert.equal(value(s, 'infini_registry_services', { type: 'unknown', health: 'healthy' }), 1);
      assert.ok(value(s, 'infini_registry_feed_events_total', { type: 'put' }) >= value(before, 'infini_registry_feed_events_total', { type: 'put' }) + 2);
      assert.ok(value(s, 'infini_registry_state_writes_total') > value(before, 'infini_registry_state_writes_total'));
      assert.ok(value(s, 'infini_registry_state_write_duration_seconds_count') > value(before, 'infini_registry_state_write_duration_seconds_count'));

      assert.equal((await http('POST', `${base}/services/ok-a/heartbeat`)).status, 200);
      assert.equal((await http('POST', `${base}/services/ok-a/heartbeat`)).status, 200);
      assert.equal((await http('POST', `${base}/services/nobody/heartbeat`)).status, 404);
      s = await scrape(base);
      assert.equal(value(s, 'infini_registry_heartbeats_total'), value(before, 'infini_registry_heartbeats_total') + 2);

      const writes = value(s, 'infini_registry_state_writes_total');
      assert.equal((await http('DELETE', `${base}/services/ok-a`)).status, 200);
      await feed.next((e) => e.type === 'delete' && e.service?.name === 'ok-a');
      s = await scrape(base);
      assert.equal(value(s, 'infini_registry_deregistrations_total'), value(before, 'infini_registry_deregistrations_total') + 1);
      assert.ok(value(s, 'infini_registry_feed_events_total', { type: 'delete' }) >= 1);
      assert.equal(value(s, 'infini_registry_services', { type: 'embedder', health: 'healthy' }), 0);
      assert.ok(value(s, 'infini_registry_state_writes_total') > writes);
    } finally {
      feed.close();
    }
    await waitFor(async () => value(await scrape(base), 'infini_registry_feed_subscribers') === 0, 'the subscriber gone');
  });

  it('counts probe results', async () => {
    await http('POST', `${base}/services`, { body: reg('ok-probed', target.port) });
    await http('POST', `${base}/services`, { body: reg('bad-probed', target.port) });
    await waitFor(async () => {
      const s = await scrape(base);
      return value(s, 'infini_registry_health_probes_total', { result: 'ok' }) >= 2 && value(s, 'infini_registry_health_probes_total', { result: 'failed' }) >= 2;
    }, 'ok and failed probes');
  });
});

describe('registry metrics: expiry', () => {
  let registry: RunningService;

  before(async () => {
    registry = await startRegistry(['--heartbeat-timeout', '0.3', '--stale-timeout', '0.8', '--cleanup-interval', '0.1']);
  });

  after(async () => {
    await registry?.stop();
  });

  it('counts a silent service as unhealthy, then its eviction and the health event', async () => {
    const base = registry.url;
    assert.equal((await http('POST', `${base}/services`, { body: reg('quiet', 1, { type: 'openai-api' }) })).status, 201);
    await waitFor(async () => value(await scrape(base), 'infini_registry_services', { type: 'openai-api', health: 'unhealthy' }) === 1, 'the service unhealthy');
    const s = await waitFor(async () => {
      const s = await scrape(base);
      return value(s, 'infini_registry_evictions_total') === 1 ? s : undefined;
    }, 'the eviction');
    assert.equal(value(s, 'infini_registry_services', { type: 'openai-api', health: 'unhealthy' }), 0);
    assert.ok(value(s, 'infini_registry_feed_events_total', { type: 'health' }) >= 1);
    assert.ok(value(s, 'infini_registry_feed_events_total', { type: 'delete' }) >= 1);
    assert.equal(value(s, 'infini_registry_deregistrations_total'), 0);
  });
});
