/**
 * End to end: the original's integration scenario (§5.1 and §5.2 of the spec) against this
 * project's binaries, failures across the whole stack, and the `up` cluster.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from './helpers/test.js';
import OpenAI from 'openai';
import { CLI, compatBinary, freePortPair, http, metric, pidAlive, readSse, spawnCli, startService, tempDir, waitFor, type RunningService, startRegistry } from './helpers/services.js';

const chat = (model: string, content = 'test', extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });

/** POST with up to 3 tries, as the original script does for tests 3-5. */
async function postWithRetries(url: string, body: unknown): Promise<any> {
  let last: any;
  for (let i = 0; i < 3; i++) {
    last = await http('POST', url, { body });
    if (last.status === 200) return last;
  }
  return last;
}

describe('e2e: the original integration scenario (8 tests + 2 babysitter checks)', () => {
  let registry: RunningService;
  let router: RunningService;
  const sitters: RunningService[] = [];
  const ports: number[] = [];
  const modelSets = ['model-a,model-shared', 'model-b,model-shared', 'model-c'];

  before(async () => {
    registry = await startRegistry();
    const dir = await tempDir();
    for (const [i, models] of modelSets.entries()) {
      const port = await freePortPair();
      ports.push(port);
      const letter = 'abc'[i];
      const file = join(dir, `babysitter${i + 1}.toml`);
      // as the original script generates them: no host (registrations use localhost), command backend
      await writeFile(
        file,
        [
          `name = "babysitter-service-model-${letter}"`,
          `port = ${port}`,
          `registry_url = "${registry.url}"`,
          '[babysitter]',
          'max_restarts = 10',
          'restart_delay = 2',
          'heartbeat_interval = 10',
          '[backend]',
          'type = "command"',
          `command = "${process.execPath}"`,
          `args = ["${CLI}", "mock", "--name", "service-model-${letter}", "--port", "${port}", "--models", "${models}", "--registry-url", "${registry.url}"]`,
          '',
        ].join('\n'),
      );
      sitters.push(await startService(['babysitter', '--config-file', file]));
    }
    // the drop-in binary, as the original's script runs it (original error format by default)
    router = await startService(['--router-port', '0', '--registry-url', registry.url, '--health-interval', '5', '--registry-sync-interval', '2'], { entry: compatBinary('infini-router') });
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services.filter((s: any) => s.healthy).length >= 6, 'six routable entries', 20_000);
  });

  after(async () => {
    await Promise.all(sitters.map((s) => s.stop()));
    await router.stop();
    await registry.stop();
  });

  it('has the expected population: 6 routable entries, 4 models, 3 babysitter records', async () => {
    const all = (await http('GET', `${registry.url}/services`)).body.services;
    assert.equal(all.filter((s: any) => s.metadata.type === 'openai-api').length, 6);
    assert.equal(all.filter((s: any) => s.metadata.type === 'command').length, 3);
    const serverRecord = all.find((s: any) => s.name === 'babysitter-service-model-a-server');
    assert.equal(serverRecord.host, 'localhost');
  });

  it('test 1: babysitter /health is JSON with a status key', async () => {
    const r = await http('GET', `http://127.0.0.1:${ports[0]! + 1}/health`);
    assert.ok(r.body && 'status' in r.body);
  });

  it('test 2: router /models lists at least 4 models', async () => {
    const r = await http('GET', `${router.url}/models`);
    assert.ok(r.body.data.length >= 4);
  });

  it('tests 3 and 4: model-a and model-b are answered by a backend serving them', async () => {
    for (const model of ['model-a', 'model-b']) {
      const r = await postWithRetries(`${router.url}/v1/chat/completions`, chat(model));
      assert.ok(r.body.choices);
      assert.equal(r.body.model, model);
    }
  });

  it('test 5: two model-shared requests are both answered (and spread over both backends)', async () => {
    const a = await postWithRetries(`${router.url}/v1/chat/completions`, chat('model-shared', 'test1'));
    const b = await postWithRetries(`${router.url}/v1/chat/completions`, chat('model-shared', 'test2'));
    for (const r of [a, b]) {
      assert.ok(r.body.choices);
      assert.equal(r.body.model, 'model-shared');
    }
    const served = new Set<string>();
    for (let i = 0; i < 8; i++) served.add((await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-shared') })).body.system_fingerprint);
    assert.ok(served.size >= 2);
  });

  it('test 6: a non-existent model gets 503', async () => {
    const r = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('non-existent-model') });
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, { error: "No healthy services available for model 'non-existent-model'" });
  });

  it('test 7: streaming output contains data: lines', async () => {
    const r = await readSse(`${router.url}/v1/chat/completions`, chat('model-a', 'test', { stream: true }));
    assert.ok(r.events.length > 0 && r.done);
  });

  it('test 8: router /services lists at least 3 services', async () => {
    assert.ok((await http('GET', `${router.url}/services`)).body.services.length >= 3);
  });

  it('§5.2 tests 9 and 10: babysitter /models and /info', async () => {
    const models = await http('GET', `http://127.0.0.1:${ports[0]! + 1}/models`);
    assert.equal(models.status, 200);
    assert.ok('data' in models.body || 'object' in models.body);
    const info = await http('GET', `http://127.0.0.1:${ports[0]! + 1}/info`);
    assert.ok('babysitter' in info.body || 'service' in info.body);
  });

  it('failure: a killed backend is routed around and comes back', async () => {
    const sitter = `http://127.0.0.1:${ports[0]! + 1}`;
    const before = (await http('GET', `${sitter}/info`)).body;
    const statuses: number[] = [];
    let stop = false;
    const traffic = (async () => {
      while (!stop) statuses.push((await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-shared') })).status);
    })();
    process.kill(before.pid, 'SIGKILL');
    await waitFor(async () => {
      const i = (await http('GET', `${sitter}/info`)).body;
      return i.state === 'ready' && i.restart_count === before.restart_count + 1;
    }, 'backend restarted by its babysitter', 20_000);
    await waitFor(async () => (await http('GET', `${router.url}/services`)).body.services.filter((s: any) => s.healthy).length >= 5, 'routable again', 20_000);
    stop = true;
    await traffic;
    assert.ok(statuses.length > 0);
    assert.deepEqual(new Set(statuses), new Set([200]), 'every request succeeded while the backend was down');
    const a = await postWithRetries(`${router.url}/v1/chat/completions`, chat('model-a'));
    assert.equal(a.status, 200);
  });

  it('failure: a memory-only registry restart never interrupts routing and is repopulated by heartbeats', async () => {
    const statuses: number[] = [];
    let stop = false;
    const traffic = (async () => {
      while (!stop) statuses.push((await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-c') })).status);
    })();
    await registry.stop();
    registry = await startService(['registry', '--port', String(registry.port), '--host', '127.0.0.1', '--no-persist']);
    // babysitters heartbeat every 10 s; a 404 makes them register again
    await waitFor(async () => (await http('GET', `${registry.url}/services`)).body.services.filter((s: any) => s.name.startsWith('babysitter-')).length === 6, 'babysitter records back', 25_000);
    stop = true;
    await traffic;
    assert.ok(statuses.length > 10);
    assert.deepEqual(new Set(statuses), new Set([200]));
  });
});

describe('e2e: infini-svc up', () => {
  let up: RunningService;
  let dataDir: string;
  const ports: number[] = [];
  let registryPort = 0;
  let routerPort = 0;

  before(async () => {
    dataDir = await tempDir('infini-up-');
    registryPort = await freePortPair();
    routerPort = await freePortPair();
    for (let i = 0; i < 2; i++) ports.push(await freePortPair());
    const file = join(dataDir, 'cluster.toml');
    await writeFile(
      file,
      [
        '[registry]',
        `port = ${registryPort}`,
        'no-persist = true',
        '[router]',
        `router-port = ${routerPort}`,
        ...ports.flatMap((p, i) => ['[[babysitter]]', `name = "up-${i}"`, `port = ${p}`, 'host = "127.0.0.1"', '[babysitter.backend]', 'type = "mock"', `models = ["up-model", "up-only-${i}"]`]),
        '',
      ].join('\n'),
    );
    up = spawnCli(['up', '--file', file, '--data-dir', join(dataDir, 'state')]);
    await waitFor(() => up.stdout.includes('Press Ctrl-C to stop.') || !up.alive, 'cluster up', 30_000);
    assert.ok(up.alive, up.stderrText);
  });

  after(async () => {
    if (up.alive) await up.stop('SIGKILL');
  });

  it('prints a table of services and a curl example', () => {
    assert.match(up.stdout, /SERVICE\s+URL\s+MODELS\s+STATE/);
    assert.match(up.stdout, /up-0\s+http:\/\/127\.0\.0\.1:\d+ \(babysitter :\d+\)\s+up-model, up-only-0\s+ready/);
    assert.match(up.stdout, new RegExp(`curl http://localhost:${routerPort}/v1/chat/completions`));
  });

  it('serves the official openai client: models, chat (streaming and not), completions, embeddings', async () => {
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${routerPort}/v1`, apiKey: 'unused', maxRetries: 0 });
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['up-model', 'up-only-0', 'up-only-1']);
    const c = await client.chat.completions.create({ model: 'up-only-1', messages: [{ role: 'user', content: 'hi' }] });
    assert.match(c.choices[0]!.message.content ?? '', /^Hello from up-1-server/);
    const stream = await client.chat.completions.create({ model: 'up-model', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.match(text, /^Hello from up-\d-server \(model: up-model\)\./);
    const comp = await client.completions.create({ model: 'up-model', prompt: 'hi', max_tokens: 3 });
    assert.equal(comp.choices[0]!.text, 'Hello from up');
    const emb = await client.embeddings.create({ model: 'up-only-0', input: ['a', 'b'] });
    assert.equal(emb.data.length, 2);
    // an unknown model is the SDK's NotFoundError (404, not retried), as with OpenAI itself
    const retrying = new OpenAI({ baseURL: `http://127.0.0.1:${routerPort}/v1`, apiKey: 'unused' });
    const errorsBefore = await metric(`http://127.0.0.1:${routerPort}`, 'infini_router_errors_total', 'status="404"');
    await assert.rejects(retrying.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.code, 'model_not_found');
      assert.equal(err.param, 'model');
      return true;
    });
    assert.equal(await metric(`http://127.0.0.1:${routerPort}`, 'infini_router_errors_total', 'status="404"'), errorsBefore + 1, 'asked once, not retried');
  });

  it('stops cleanly on SIGINT to its process group: no process and no port left', async () => {
    const infos = await Promise.all(ports.map(async (p) => (await http('GET', `http://127.0.0.1:${p + 1}/info`)).body));
    const backendPids = infos.map((i) => i.pid as number);
    const { code } = await up.stop('SIGINT');
    assert.equal(code, 0);
    for (const pid of backendPids) assert.equal(pidAlive(pid), false);
    const all = [registryPort, routerPort, ...ports, ...ports.map((p) => p + 1)];
    for (const port of all) {
      const free = await new Promise<boolean>((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(false));
        s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
      });
      assert.ok(free, `port ${port} released`);
    }
  });
});

describe('e2e: up refuses bad input', () => {
  it('names the file, key and problem of a bad cluster file', async () => {
    const dir = await tempDir();
    const file = join(dir, 'bad.toml');
    await writeFile(file, '[router]\nrouter-port = 8000\nturbo = true\n');
    const bad = spawnCli(['up', '--file', file, '--data-dir', join(dir, 'state')]);
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.stderrText, /cluster file .*bad\.toml: unknown key 'router\.turbo'/);
    assert.equal(bad.stderrText.trim().split('\n').length, 1);
  });

  it('refuses a babysitter section that its babysitter would refuse, before starting anything', async () => {
    const dir = await tempDir();
    const file = join(dir, 'bad.toml');
    const regPort = await freePortPair();
    // a typo, then a mock without models: each is found before the registry starts
    await writeFile(file, `[registry]\nport = ${regPort}\n[[babysitter]]\nname = "m1"\nport = 8600\n[babysitter.babysitter]\nheartbeat_intervl = 5\n[babysitter.backend]\ntype = "mock"\n`);
    const typo = spawnCli(['up', '--file', file, '--data-dir', join(dir, 'state')]);
    assert.equal((await typo.exited).code, 2);
    assert.match(typo.stderrText, /unknown key 'babysitter\[0\]\.babysitter\.heartbeat_intervl' \(did you mean 'babysitter\[0\]\.babysitter\.heartbeat_interval'\?\)/);
    await writeFile(file, `[registry]\nport = ${regPort}\n[[babysitter]]\nname = "m1"\nport = 8600\n[babysitter.backend]\ntype = "mock"\n`);
    const models = spawnCli(['up', '--file', file, '--data-dir', join(dir, 'state')]);
    assert.equal((await models.exited).code, 2);
    assert.match(models.stderrText, /cluster file .*bad\.toml: babysitter 'm1': key 'backend\.models': a model list is required for backend type 'mock'/);
    assert.equal(models.stdout, '', 'nothing was started');
  });

  it('names the port and the service when a port is taken, and starts nothing', async () => {
    const dir = await tempDir();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '0.0.0.0', r));
    const taken = (blocker.address() as any).port;
    const regPort = await freePortPair();
    const file = join(dir, 'cluster.toml');
    await writeFile(file, `[registry]\nport = ${regPort}\n[router]\nrouter-port = ${taken}\n`);
    const up = spawnCli(['up', '--file', file, '--data-dir', join(dir, 'state')]);
    assert.equal((await up.exited).code, 2);
    assert.match(up.stderrText, new RegExp(`router: port ${taken} on 127\\.0\\.0\\.1 is already in use`));
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(regPort, '0.0.0.0', () => s.close(() => resolve(true)));
    });
    assert.ok(free, 'the registry was never started');
    blocker.close();
  });
});
