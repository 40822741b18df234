import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { freePortPair, http, spawnCli, startRegistry, startService, tempDir, waitFor, type RunningService } from './helpers/services.js';
import { babysitterRecords } from '../src/status/collect.js';
import { withWatchValue } from '../src/status/cli.js';
import { formatMs, formatRate, formatUptime } from '../src/status/table.js';

/** Runs `infini-svc status ARGS` to its end. */
async function status(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnCli(['status', ...args]);
  const { code } = await run.exited;
  return { code, stdout: run.stdout, stderr: run.stderrText };
}

describe('infini-svc status', () => {
  it('lists registry, router and a babysitter with its backend; a stopped router shows down (exit 1)', async () => {
    const reg = await startRegistry();
    const dir = await tempDir();
    const port = await freePortPair();
    const cfg = join(dir, 'sitter.toml');
    await writeFile(cfg, `name = "sitter-s"\nhost = "127.0.0.1"\nport = ${port}\nregistry_url = "${reg.url}"\n[babysitter]\nheartbeat_interval = 0.2\n[backend]\ntype = "mock"\nmodels = ["model-s"]\n`);
    const sitter: RunningService = await startService(['babysitter', '--config-file', cfg]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url]);
    await waitFor(async () => (await http('GET', `${router.url}/v1/models`)).body?.data?.some((m: any) => m.id === 'model-s'), 'the backend routable');
    assert.ok(sitter.alive);

    const flags = ['--registry-url', reg.url, '--router-url', router.url];
    const json = await status([...flags, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout) as any[];
    assert.deepEqual(rows.map((r) => r.service), ['registry', 'router', 'sitter-s']);
    const [registry, routerRow, sitterRow] = rows;
    assert.equal(registry.state, 'ready');
    assert.equal(typeof registry.uptime_s, 'number');
    assert.equal(registry.pid, reg.proc.pid, 'the registry reports its pid');
    assert.equal(routerRow.state, 'ready');
    assert.equal(routerRow.pid, router.proc.pid, 'the router reports its pid');
    assert.equal(typeof routerRow.uptime_s, 'number');
    assert.deepEqual(routerRow.models, ['model-s']);
    assert.equal(routerRow.in_flight, 0);
    assert.equal(sitterRow.state, 'ready');
    assert.equal(typeof sitterRow.pid, 'number');
    assert.ok(sitterRow.pid > 0);
    assert.equal(sitterRow.restarts, 0);
    assert.deepEqual(sitterRow.models, ['model-s']);
    assert.equal(sitterRow.in_flight, 0);
    assert.equal(sitterRow.url, `http://127.0.0.1:${port + 1}`);
    assert.equal(sitterRow.req_s, 0, 'no requests yet');
    assert.equal(sitterRow.ttft_p50_ms, null);
    assert.equal(registry.req_s, null);

    // traffic through the router shows in REQ/S and TTFT P50 (streamed requests' first event), the backend's and the router's
    for (let i = 0; i < 3; i++) assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: { model: 'model-s', stream: true, messages: [{ role: 'user', content: 'hi' }] } })).status, 200);
    const busy = JSON.parse((await status([...flags, '--json'])).stdout) as any[];
    for (const row of [busy[1], busy[2]]) {
      assert.ok(row.req_s > 0, `${row.service} req/s ${row.req_s}`);
      assert.ok(typeof row.ttft_p50_ms === 'number' && row.ttft_p50_ms > 0, `${row.service} ttft ${row.ttft_p50_ms}`);
    }

    const table = await status(flags);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^SERVICE\s+STATE\s+PID\s+UPTIME\s+RESTARTS\s+MODELS\s+IN-FLIGHT\s+REQ\/S\s+TTFT P50\s+URL$/);
    assert.match(lines.find((l) => l.startsWith('sitter-s'))!, /^sitter-s\s+ready\s+\d+\s+\d+s\s+0\s+model-s\s+0\s+\d+\.\d+\s+\d+(\.\d+)?m?s\s+http:\/\/127\.0\.0\.1:/);
    assert.match(lines.find((l) => l.startsWith('registry'))!, /\s-\s+-\s+-\s+http:/, 'no in-flight, req/s or TTFT for the registry');

    // --watch redraws until Ctrl-C
    const watching = spawnCli(['status', ...flags, '--watch', '0.1']);
    await waitFor(() => watching.stdout.split('SERVICE').length > 2, 'two redraws');
    watching.signal('SIGINT');
    assert.equal((await watching.exited).code, 0);

    await router.stop();
    const down = await status([...flags, '--json']);
    assert.equal(down.code, 1);
    const after = JSON.parse(down.stdout) as any[];
    assert.equal(after.find((r) => r.service === 'router').state, 'down');
    assert.equal(after.find((r) => r.service === 'sitter-s').state, 'ready');
    assert.equal(after.find((r) => r.service === 'sitter-s').in_flight, null);
    assert.equal(after.find((r) => r.service === 'sitter-s').req_s, null, 'no router, no figures');
    const plain = await status(flags);
    assert.equal(plain.code, 1);
    assert.match(plain.stdout, /^router\s+down\s/m);
  });

  it('reads the ports of a cluster file; nothing answering is down everywhere, never a crash', async () => {
    const dir = await tempDir();
    const [a, b, c] = [await freePortPair(), await freePortPair(), await freePortPair()];
    const file = join(dir, 'cluster.toml');
    await writeFile(file, `[registry]\nport = ${a}\n[router]\nrouter-port = ${b}\n[[babysitter]]\nname = "gone"\nport = ${c}\n[babysitter.backend]\ntype = "mock"\nmodels = ["m"]\n`);
    const r = await status(['--file', file, '--json']);
    assert.equal(r.code, 1, r.stderr);
    const rows = JSON.parse(r.stdout) as any[];
    assert.deepEqual(rows.map((x) => [x.service, x.state, x.url]), [
      ['registry', 'down', `http://127.0.0.1:${a}`],
      ['router', 'down', `http://127.0.0.1:${b}`],
      ['gone', 'down', `http://127.0.0.1:${c + 1}`],
    ]);
    const bad = await status(['--watch', '0']);
    assert.equal(bad.code, 2);
  });

  it('units: babysitter records, uptime, a bare --watch', () => {
    const listing = [
      { name: 'a', url: 'http://h:8101', metadata: { type: 'mock', babysitter: 'enhanced' } },
      { name: 'a-server', url: 'http://h:8100', metadata: { type: 'openai-api', parent_service: 'a', babysitter: 'enhanced' } },
      { name: 'plain', url: 'http://h:9000', metadata: {} },
      'junk',
      null,
    ];
    assert.deepEqual(babysitterRecords(listing), [{ name: 'a', url: 'http://h:8101' }]);
    assert.deepEqual(babysitterRecords({ services: listing }), [{ name: 'a', url: 'http://h:8101' }]);
    assert.deepEqual(babysitterRecords('nonsense'), []);
    assert.deepEqual([formatUptime(null), formatUptime(42), formatUptime(303), formatUptime(7800), formatUptime(273_600)], ['-', '42s', '5m 3s', '2h 10m', '3d 4h']);
    assert.deepEqual([formatRate(null), formatRate(0), formatRate(0.254), formatRate(12.34), formatRate(1234.5)], ['-', '0', '0.25', '12.3', '1235']);
    assert.deepEqual([formatMs(null), formatMs(12.4), formatMs(1250), formatMs(42_000)], ['-', '12ms', '1.25s', '42s']);
    assert.deepEqual(withWatchValue(['--watch']), ['--watch=2']);
    assert.deepEqual(withWatchValue(['--watch', '--json']), ['--watch=2', '--json']);
    assert.deepEqual(withWatchValue(['--watch', '5']), ['--watch', '5']);
  });
});
