import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { FAKE_BACKEND, freePortPair, http, pidAlive, servedBy, spawnCli, startStubbornBackend, startService, tempDir, waitFor, type RunningService, startRegistry } from './helpers/services.js';

const info = async (b: RunningService) => (await http('GET', `${b.url}/info`)).body;

describe('babysitter: registration and routing', () => {
  it('registers both records, the router routes to the backend, and SIGTERM deregisters both', async () => {
    const reg = await startRegistry();
    const dir = await tempDir();
    const port = await freePortPair();
    const cfg = join(dir, 'sitter.toml');
    await writeFile(cfg, `name = "sitter-a"\nhost = "127.0.0.1"\nport = ${port}\nregistry_url = "${reg.url}"\n[babysitter]\nheartbeat_interval = 0.2\n[backend]\ntype = "mock"\nmodels = ["model-x", "model-y"]\n[metadata]\ncache_type = "paged"\nstatic = true\n`);
    const sitter = await startService(['babysitter', '--config-file', cfg]);
    assert.equal(sitter.port, port + 1);
    const server = await waitFor(async () => {
      const r = await http('GET', `${reg.url}/services/sitter-a-server`);
      return r.status === 200 ? r.body : undefined;
    }, 'backend record');
    assert.deepEqual(server.metadata.models, ['model-x', 'model-y']);
    assert.equal(server.metadata.type, 'openai-api');
    assert.equal(server.metadata.parent_service, 'sitter-a');
    assert.equal(server.metadata.babysitter, 'enhanced');
    assert.equal(server.metadata.cache_type, 'paged');
    assert.equal(server.metadata.static, true);
    assert.deepEqual(server.metadata.models_list.map((m: any) => m.id), ['model-x', 'model-y']);
    assert.equal(server.url, `http://127.0.0.1:${port}`);
    const own = (await http('GET', `${reg.url}/services/sitter-a`)).body;
    assert.equal(own.port, port + 1);
    assert.deepEqual(own.metadata, { type: 'mock', babysitter: 'enhanced' });

    const h = await http('GET', `${sitter.url}/health`);
    assert.equal(h.status, 200);
    for (const key of ['status', 'service', 'babysitter', 'infinilm_server_running', 'infinilm_server_port', 'timestamp']) assert.ok(key in h.body, key);
    assert.equal(h.body.infinilm_server_running, true);
    const models = await http('GET', `${sitter.url}/models`);
    assert.equal(models.body.object, 'list');
    assert.deepEqual(models.body.data.map((m: any) => m.id), ['model-x', 'model-y']);
    const i = await info(sitter);
    assert.equal(i.service, 'sitter-a');
    assert.equal(i.babysitter, 'enhanced');
    assert.equal(i.state, 'ready');
    assert.equal(i.restart_count, 0);
    assert.ok(Array.isArray(i.recent_logs) && i.recent_logs.length > 0);

    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url]);
    const r = await waitFor(async () => {
      const res = await http('POST', `${router.url}/v1/chat/completions`, { body: { model: 'model-y', messages: [{ role: 'user', content: 'hi' }] } });
      return res.status === 200 ? res : undefined;
    }, 'routing through the router');
    assert.equal(servedBy(r.body), 'sitter-a-server');
    const routerView = (await http('GET', `${router.url}/services`)).body.services;
    assert.deepEqual(routerView.map((s: any) => s.name), ['sitter-a-server'], 'only the openai-api record is routed');
    assert.equal(routerView[0].healthy, true, 'the router\'s check of the babysitter at port+1 passes');

    const backendPid = i.pid as number;
    assert.equal((await sitter.stop('SIGTERM')).code, 0);
    assert.equal(pidAlive(backendPid), false);
    assert.equal((await http('GET', `${reg.url}/services/sitter-a-server`)).status, 404);
    assert.equal((await http('GET', `${reg.url}/services/sitter-a`)).status, 404);
    await Promise.all([router.stop(), reg.stop()]);
  });

  it('is repopulated within a heartbeat after a memory-only registry restarts', async () => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--service-type', 'mock', '--args', 'm1', '--registry-url', reg.url, '--heartbeat-interval', '0.3', '--host', '127.0.0.1']);
    await waitFor(async () => (await http('GET', `${reg.url}/services/mock-${port}-server`)).status === 200, 'registered');
    await reg.stop();
    const again = await startService(['registry', '--port', String(reg.port), '--host', '127.0.0.1', '--no-persist']);
    await waitFor(async () => (await http('GET', `${again.url}/services`)).body.total === 2, 'both records back', 3000);
    await Promise.all([sitter.stop(), again.stop()]);
  });

  it('retries registration while the registry is down', async () => {
    const port = await freePortPair();
    const regPort = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--service-type', 'mock', '--args', 'm1', '--registry-url', `http://127.0.0.1:${regPort}`, '--heartbeat-interval', '5', '--host', '127.0.0.1']);
    await sitter.waitForLog((l) => l.msg === 'registration failed; will retry');
    const reg = await startService(['registry', '--port', String(regPort), '--host', '127.0.0.1', '--no-persist']);
    await waitFor(async () => (await http('GET', `${reg.url}/services`)).body.total === 2, 'registered after the registry came up', 8000);
    await Promise.all([sitter.stop(), reg.stop()]);
  });
});

describe('babysitter: supervision', () => {
  it('restarts a crashing backend with growing delays, then reports it failed and keeps serving', async () => {
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--command', `${process.execPath} -e process.exit(3)`, '--restart-delay', '0.1', '--max-restarts', '3']);
    await waitFor(async () => (await info(sitter)).state === 'failed', 'failed after max restarts');
    const delays = sitter.logs.filter((l) => l.msg === 'restarting backend after delay').map((l) => l.delay_s);
    assert.deepEqual(delays, [0.1, 0.2, 0.4]);
    const i = await info(sitter);
    assert.equal(i.restart_count, 3);
    assert.equal(i.last_exit_code, 3);
    const h = await http('GET', `${sitter.url}/health`);
    assert.equal(h.status, 503);
    assert.equal(h.body.infinilm_server_running, false);
    await sitter.stop();
  });

  it('restarts a hung backend (the mock frozen by fault injection)', async () => {
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--service-type', 'mock', '--args', 'm1', '--liveness-interval', '0.2', '--liveness-timeout', '0.2', '--liveness-failures', '2', '--restart-delay', '0.1', '--stop-grace', '1']);
    await waitFor(async () => (await info(sitter)).state === 'ready', 'ready');
    const firstPid = (await info(sitter)).pid;
    await fetch(`http://127.0.0.1:${port}/health`, { headers: { 'x-mock-freeze': '1' }, signal: AbortSignal.timeout(200) }).catch(() => undefined);
    await waitFor(async () => {
      const i = await info(sitter);
      return i.state === 'ready' && i.restart_count === 1 && i.pid !== firstPid;
    }, 'restarted after the hang', 15_000);
    // backend_uptime counts from the new engine's start, uptime from the babysitter's
    const after = await info(sitter);
    assert.equal(typeof after.backend_uptime, 'number');
    assert.ok(after.backend_uptime <= after.uptime, `backend ${after.backend_uptime} s, babysitter ${after.uptime} s`);
    assert.ok(sitter.logs.some((l) => l.msg === 'backend hung: restarting it'));
    assert.equal(pidAlive(firstPid), false);
    await sitter.stop();
  });

  it('waits for a slow start, and restarts a start that exceeds the startup timeout', async () => {
    const port = await freePortPair();
    const dir = await tempDir();
    const cfg = join(dir, 'slow.toml');
    await writeFile(cfg, `port = ${port}\n[backend]\ntype = "mock"\nmodels = ["m"]\nargs = ["--startup-delay", "0.8"]\n`);
    const sitter = await startService(['babysitter', '--config-file', cfg]);
    const early = await http('GET', `${sitter.url}/health`);
    assert.equal(early.status, 503);
    assert.equal(early.body.status, 'starting');
    await waitFor(async () => (await http('GET', `${sitter.url}/health`)).status === 200, 'ready after the slow start');
    assert.equal((await info(sitter)).restart_count, 0);
    await sitter.stop();

    const impatient = await startService(['babysitter', '--config-file', cfg, '--startup-timeout', '0.3', '--restart-delay', '5']);
    // the reason shows at once (state "stopping" while its group is stopped), then the back-off
    await waitFor(async () => (await info(impatient)).last_down_reason === 'startup timeout', 'start counted as failed');
    await waitFor(async () => (await info(impatient)).state === 'backoff', 'backing off after the group stopped');
    assert.equal((await info(impatient)).last_down_reason, 'startup timeout');
    await impatient.stop();
  });

  it('kills the whole backend process group on SIGTERM, SIGKILLing what ignores SIGTERM', async () => {
    const { sitter, tree } = await startStubbornBackend();
    assert.ok(pidAlive(tree.pid) && pidAlive(tree.child));
    assert.equal((await sitter.stop('SIGTERM')).code, 0);
    assert.equal(pidAlive(tree.pid), false, 'backend gone');
    assert.equal(pidAlive(tree.child), false, 'its child gone too');
    assert.ok(sitter.logs.some((l) => l.msg === 'backend stopped' && l.how === 'killed'));
  });

  it('kills the rest of the group when the direct child dies, before restarting', async () => {
    const port = await freePortPair();
    const dir = await tempDir();
    const out = join(dir, 'tree.json');
    const sitter = await startService(['babysitter', '--port', String(port), '--command', `${process.execPath} ${FAKE_BACKEND}`, '--args', `--port ${port}`, '--env', `OUT_FILE=${out}`, '--env', 'SPAWN_CHILD=1', '--restart-delay', '0.1']);
    await waitFor(async () => (await info(sitter)).state === 'ready', 'ready');
    const first = JSON.parse(await readFile(out, 'utf8'));
    process.kill(first.pid, 'SIGKILL');
    await waitFor(async () => {
      const i = await info(sitter);
      return i.state === 'ready' && i.restart_count === 1;
    }, 'restarted');
    assert.equal(pidAlive(first.child), false, 'the orphaned worker was killed');
    await sitter.stop();
  });
});

describe('babysitter: command lines, environment and model discovery', () => {
  it('passes command words, args with spaces, dash-leading --args and --env to the backend', async () => {
    const port = await freePortPair();
    const dir = await tempDir();
    const out = join(dir, 'argv.json');
    const cfg = join(dir, 'cmd.toml');
    await writeFile(cfg, `port = ${port}\n[backend]\ntype = "command"\ncommand = "${process.execPath} ${FAKE_BACKEND} --port ${port}"\nargs = ["--title", "a b c"]\nwork_dir = "${dir}"\n[backend.env]\nOUT_FILE = "${out}"\nA = "from-file"\nB = "secret-value"\n`);
    const sitter = await startService(['babysitter', '--config-file', cfg]);
    await waitFor(async () => (await info(sitter)).state === 'ready', 'ready');
    const seen = JSON.parse(await readFile(out, 'utf8'));
    assert.deepEqual(seen.argv, ['--port', String(port), '--title', 'a b c']);
    assert.equal(seen.env.A, 'from-file');
    assert.equal(seen.cwd, dir);
    assert.ok(!sitter.stderrText.includes('secret-value'), 'env values are never logged');
    assert.ok(sitter.logs.some((l) => l.msg === 'backend output' && l.line === `fake backend listening on ${port}`), 'backend output captured');
    await sitter.stop();

    const port2 = await freePortPair();
    const out2 = join(dir, 'argv2.json');
    const cli = await startService(['babysitter', '--port', String(port2), '--command', `${process.execPath} ${FAKE_BACKEND}`, '--args', `--port ${port2} --label 'x y'`, '--env', `OUT_FILE=${out2} A=1 B=2`, '--env', 'C=hello world']);
    await waitFor(async () => (await info(cli)).state === 'ready', 'ready');
    const seen2 = JSON.parse(await readFile(out2, 'utf8'));
    assert.deepEqual(seen2.argv, ['--port', String(port2), '--label', 'x y']);
    assert.deepEqual(seen2.env, { A: '1', B: '2', C: 'hello world' });
    await cli.stop();
  });

  it('wraps a bare model array and registers declared models of a backend without a models endpoint', async () => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const bare = await startService(['babysitter', '--port', String(port), '--command', `${process.execPath} ${FAKE_BACKEND} --port ${port}`, '--env', 'MODE=bare', '--registry-url', reg.url]);
    await waitFor(async () => (await info(bare)).state === 'ready', 'ready');
    const models = await http('GET', `${bare.url}/models`);
    assert.deepEqual(models.body, { object: 'list', data: [{ id: 'bare-model' }] });
    await bare.stop();

    const port2 = await freePortPair();
    const emb = await startService(['babysitter', '--port', String(port2), '--name', 'embedder', '--command', `${process.execPath} ${FAKE_BACKEND} --port ${port2}`, '--env', 'MODE=health-only', '--models', 'bge-m3', '--registry-url', reg.url]);
    const rec = await waitFor(async () => {
      const r = await http('GET', `${reg.url}/services/embedder-server`);
      return r.status === 200 ? r.body : undefined;
    }, 'declared models registered');
    assert.deepEqual(rec.metadata.models, ['bge-m3']);
    assert.deepEqual((await http('GET', `${emb.url}/models`)).body.data.map((m: any) => m.id), ['bge-m3']);
    await Promise.all([emb.stop(), reg.stop()]);
  });

  it('removes the backend record at once when the backend dies, and registers it again after the restart', async () => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'flappy', '--service-type', 'mock', '--args', 'm', '--registry-url', reg.url, '--restart-delay', '1', '--heartbeat-interval', '30']);
    await waitFor(async () => (await http('GET', `${reg.url}/services/flappy-server`)).status === 200, 'registered');
    const pid = (await info(sitter)).pid;
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await http('GET', `${reg.url}/services/flappy-server`)).status === 404, 'record removed at once', 900);
    assert.equal((await http('GET', `${reg.url}/services/flappy`)).status, 200, 'the babysitter record stays');
    await waitFor(async () => (await http('GET', `${reg.url}/services/flappy-server`)).status === 200, 'registered again after the restart');
    await Promise.all([sitter.stop(), reg.stop()]);
  });

  it('exits with one line on bad configuration', async () => {
    const dir = await tempDir();
    const file = join(dir, 'bad.toml');
    await writeFile(file, 'port = 8100\n[backend]\ntype = "tgi"\n');
    const bad = spawnCli(['babysitter', '--config-file', file]);
    assert.equal((await bad.exited).code, 2);
    assert.equal(bad.stderrText.trim().split('\n').length, 1);
    assert.match(bad.stderrText, /bad\.toml: key 'backend\.type': unknown backend type 'tgi'/);
  });
});
