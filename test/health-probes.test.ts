/**
 * Health probes of the registry and checks of the router, in real processes on 127.0.0.1: the
 * concurrency bound holds at the target, new targets are checked promptly, removed ones never
 * again, and a router too busy to time its checks (stopped) marks no backend unhealthy.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from './helpers/test.js';
import { freePortPair, http, startRegistry, startService, waitFor, type RunningService } from './helpers/services.js';

/**
 * One server standing in for many targets: target X is probed at `/X/health` (its registered URL
 * is `http://127.0.0.1:PORT/X`). Counts requests per target and the most answered at once.
 */
class Fleet {
  readonly server: Server;
  port = 0;
  readonly hits = new Map<string, number>();
  inProgress = 0;
  maxInProgress = 0;

  constructor(private readonly answerAfterMs: number) {
    this.server = createServer((req, res) => {
      const target = (req.url ?? '').split('/')[1] ?? '';
      this.hits.set(target, (this.hits.get(target) ?? 0) + 1);
      this.inProgress++;
      this.maxInProgress = Math.max(this.maxInProgress, this.inProgress);
      setTimeout(() => {
        // counted down before the answer leaves: the prober's slot is still taken until it arrives
        this.inProgress--;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      }, this.answerAfterMs);
    });
  }

  /** Listens on a port P whose P+1 is free (no babysitter there: the router asks the backend itself). */
  async listen(): Promise<this> {
    this.port = await freePortPair();
    await new Promise<void>((r) => this.server.listen(this.port, '127.0.0.1', r));
    return this;
  }

  count(target: string): number {
    return this.hits.get(target) ?? 0;
  }

  url(target: string): string {
    return `http://127.0.0.1:${this.port}/${target}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A registration probed at its URL (the registry probes openai-api records at port+1, the babysitter). */
const record = (fleet: Fleet, name: string) => ({ name, host: '127.0.0.1', port: fleet.port, hostname: '127.0.0.1', url: fleet.url(name), status: 'running', metadata: {} });
/** A registration the router routes to: it checks port+1 first (nothing there), then the URL. */
const backend = (fleet: Fleet, name: string) => ({ ...record(fleet, name), metadata: { type: 'openai-api', models: ['m'] } });
const PROBE_STATS_KEYS = ['concurrency', 'done', 'failed', 'in_flight', 'inconclusive'];

describe('registry health probes', () => {
  let fleet: Fleet;
  let reg: RunningService;
  before(async () => {
    // 20 services answering after 200 ms, once per 1 s interval: 4 probes' worth of work per
    // second for 3 slots, so the prober is always at its bound
    fleet = await new Fleet(200).listen();
    reg = await startRegistry(['--health-interval', '1', '--health-timeout', '2', '--health-concurrency', '3']);
  });
  after(async () => {
    await reg.stop();
    await fleet.close();
  });

  it('never has more probes under way than --health-concurrency, probes every service, and reports counters in /stats', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `bound-${i}`);
    for (const n of names) assert.equal((await http('POST', `${reg.url}/services`, { body: record(fleet, n) })).status, 201);
    // several intervals
    await waitFor(() => names.every((n) => fleet.count(n) >= 3), 'every service probed three times', 30_000);
    assert.equal(fleet.maxInProgress, 3);
    for (const n of names) assert.equal((await http('GET', `${reg.url}/services/${n}`)).body.health_status, 'healthy');
    const probes = (await http('GET', `${reg.url}/stats`)).body.probes;
    assert.deepEqual(Object.keys(probes).sort(), PROBE_STATS_KEYS);
    assert.equal(probes.concurrency, 3);
    assert.ok(probes.in_flight <= 3);
    assert.ok(probes.done >= 60 - probes.in_flight);
    assert.equal(probes.failed, 0);
    for (const n of names) assert.equal((await http('DELETE', `${reg.url}/services/${n}`)).status, 200);
  });

  it('never probes a deregistered service again', async () => {
    for (const n of ['stays', 'leaves']) assert.equal((await http('POST', `${reg.url}/services`, { body: record(fleet, n) })).status, 201);
    await waitFor(() => fleet.count('stays') >= 1 && fleet.count('leaves') >= 1, 'both probed', 15_000);
    assert.equal((await http('DELETE', `${reg.url}/services/leaves`)).status, 200);
    // a probe under way when it left may still land
    const left = fleet.count('leaves') + 1;
    const stays = fleet.count('stays');
    await waitFor(() => fleet.count('stays') >= stays + 4, 'four more intervals', 15_000);
    assert.ok(fleet.count('leaves') <= left, `probed ${fleet.count('leaves') - left + 1} times after leaving`);
  });
});

describe('router health checks', () => {
  let fleet: Fleet;
  before(async () => {
    fleet = await new Fleet(100).listen();
  });
  after(() => fleet.close());

  it('never has more checks under way than --health-concurrency, also at start-up, and reports counters in /stats', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `static-${i}`);
    const fleet = await new Fleet(100).listen();
    const reg = await startRegistry();
    for (const n of names) await http('POST', `${reg.url}/services`, { body: backend(fleet, n) });
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--health-interval', '0.5', '--health-concurrency', '2']);
    try {
      await waitFor(() => names.every((n) => fleet.count(n) >= 3), 'every backend checked three times', 30_000);
      assert.equal(fleet.maxInProgress, 2);
      const st = (await http('GET', `${router.url}/stats`)).body;
      assert.deepEqual(Object.keys(st.health_checks).sort(), PROBE_STATS_KEYS);
      assert.equal(st.health_checks.concurrency, 2);
      assert.equal(st.health_checks.failed, 0);
      assert.equal(st.healthy_services, 20);
    } finally {
      await Promise.all([router.stop(), reg.stop(), fleet.close()]);
    }
  });

  it('checks a backend that joins at once, not an interval later', async () => {
    const reg = await startRegistry();
    await http('POST', `${reg.url}/services`, { body: backend(fleet, 'first') });
    // checks every 10 minutes: only a check on joining reaches the newcomer within the test
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--health-interval', '600']);
    try {
      await waitFor(() => fleet.count('first') >= 1, 'the start-up check');
      await http('POST', `${reg.url}/services`, { body: backend(fleet, 'newcomer') });
      await waitFor(() => fleet.count('newcomer') >= 1, 'the newcomer checked on joining');
    } finally {
      await Promise.all([router.stop(), reg.stop()]);
    }
  });

  it('forgets a backend that left: no more checks', async () => {
    const reg = await startRegistry();
    for (const n of ['keeper', 'goner']) await http('POST', `${reg.url}/services`, { body: backend(fleet, n) });
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--health-interval', '0.3']);
    try {
      await waitFor(() => fleet.count('keeper') >= 2 && fleet.count('goner') >= 2, 'both checked');
      assert.equal((await http('DELETE', `${reg.url}/services/goner`)).status, 200);
      await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services.length === 1, 'the router dropped it');
      const left = fleet.count('goner') + 1; // a check under way may still land
      const keeper = fleet.count('keeper');
      await waitFor(() => fleet.count('keeper') >= keeper + 5, 'five more intervals');
      assert.ok(fleet.count('goner') <= left, 'checked after it left');
    } finally {
      await Promise.all([router.stop(), reg.stop()]);
    }
  });

  it('marks no backend unhealthy for checks that timed out while the router itself was stopped', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `paused-${i}`);
    const reg = await startRegistry();
    for (const n of names) await http('POST', `${reg.url}/services`, { body: backend(fleet, n) });
    // answers take 100 ms, the timeout is 300 ms: checks are under way most of the time
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--health-interval', '0.2', '--health-timeout', '0.3']);
    try {
      await waitFor(async () => (await http('GET', `${router.url}/stats`)).body.health_checks.done >= 20, 'checks running');
      for (let i = 0; i < 3; i++) {
        const done = (await http('GET', `${router.url}/stats`)).body.health_checks.done;
        // stopped for longer than the timeout: every check under way sees its timer fire late
        router.signal('SIGSTOP');
        await new Promise((r) => setTimeout(r, 1000));
        router.signal('SIGCONT');
        await waitFor(async () => (await http('GET', `${router.url}/stats`)).body.health_checks.done >= done + 20, 'checks running again');
      }
      const st = (await http('GET', `${router.url}/stats`)).body;
      assert.equal(st.health_checks.failed, 0, JSON.stringify(st.health_checks));
      assert.equal(st.healthy_services, 10);
      assert.ok(!router.logs.some((l) => l.msg === 'backend check fails'), 'no check failed');
    } finally {
      await Promise.all([router.stop(), reg.stop()]);
    }
  });
});
