/**
 * `infini-svc up` for real: the order of a graceful stop (router drains first), no process left
 * behind when up itself is killed, backends' failures reported as they happen, loopback binds.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { freePortPair, http, pidAlive, spawnCli, tempDir, waitFor, type RunningService } from './helpers/services.js';

interface UpCluster {
  up: RunningService;
  dataDir: string;
  registryPort: number;
  routerPort: number;
  /** Backend ports; each babysitter is on port+1. */
  ports: number[];
}

/** Writes a cluster file (registry, router, the given babysitter entries) and runs `up` until its table is printed. */
async function startUp(sitters: Array<(port: number) => string[]>, extraArgs: string[] = [], readyTimeoutMs = 60_000): Promise<UpCluster> {
  const dir = await tempDir('infini-up-');
  const registryPort = await freePortPair();
  const routerPort = await freePortPair();
  const ports: number[] = [];
  for (let i = 0; i < sitters.length; i++) ports.push(await freePortPair());
  const file = join(dir, 'cluster.toml');
  const lines = ['[registry]', `port = ${registryPort}`, 'no-persist = true', '[router]', `router-port = ${routerPort}`];
  sitters.forEach((entry, i) => lines.push('[[babysitter]]', `port = ${ports[i]}`, ...entry(ports[i]!)));
  await writeFile(file, `${lines.join('\n')}\n`);
  const dataDir = join(dir, 'state');
  const up = spawnCli(['up', '--file', file, '--data-dir', dataDir, ...extraArgs]);
  await waitFor(() => up.stdout.includes('Press Ctrl-C to stop.') || !up.alive, 'cluster up', readyTimeoutMs);
  assert.ok(up.alive, `${up.stdout}\n${up.stderrText}`);
  return { up, dataDir, registryPort, routerPort, ports };
}

const mockSitter = (name: string, models: string[], args: string[] = []) => () => [
  `name = "${name}"`,
  '[babysitter.backend]',
  'type = "mock"',
  `models = ${JSON.stringify(models)}`,
  `args = ${JSON.stringify(args)}`,
];

/** Pids of every service process up started, from the `pid` of their JSON log lines. */
function servicePids(dataDir: string): number[] {
  const pids = new Set<number>();
  const logs = join(dataDir, 'logs');
  for (const f of readdirSync(logs)) {
    for (const line of readFileSync(join(logs, f), 'utf8').split('\n')) {
      try {
        const pid = JSON.parse(line).pid;
        if (typeof pid === 'number') pids.add(pid);
      } catch {
        // not JSON
      }
    }
  }
  return [...pids];
}

async function enginePids(c: UpCluster): Promise<number[]> {
  return Promise.all(c.ports.map(async (p) => (await http('GET', `http://127.0.0.1:${p + 1}/info`)).body.pid as number));
}

/** Resolves with the error code of a TCP connection attempt (undefined when it connects). */
function connectError(port: number, host = '127.0.0.1'): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(undefined);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

/** A streaming request whose first chunk and end are observable separately. */
function openStream(url: string, body: unknown): { first: Promise<void>; result: Promise<{ done: boolean; chunks: number; error?: unknown }>; finished: () => boolean } {
  let gotFirst!: () => void;
  const first = new Promise<void>((r) => (gotFirst = r));
  let finished = false;
  const result = (async () => {
    let chunks = 0;
    let text = '';
    try {
      const res = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 200);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += Buffer.from(chunk).toString('utf8');
        chunks++;
        gotFirst();
      }
      return { done: /data: \[DONE\]\n\n$/.test(text), chunks };
    } catch (error) {
      return { done: false, chunks, error };
    } finally {
      finished = true;
      gotFirst();
    }
  })();
  return { first, result, finished: () => finished };
}

/** Listening sockets on these ports, from /proc/net/tcp{,6}: `address:port` in kernel hex. */
function listeners(ports: number[]): Array<{ file: string; local: string; port: number }> {
  const found: Array<{ file: string; local: string; port: number }> = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.trim().split('\n').slice(1)) {
      const [, local, , state] = row.trim().split(/\s+/);
      const [addr, portHex] = local!.split(':');
      const port = parseInt(portHex!, 16);
      if (state === '0A' && ports.includes(port)) found.push({ file, local: addr!, port });
    }
  }
  return found;
}

describe('up: stopping drains the router first', { timeout: 120_000 }, () => {
  it('lets a stream in flight finish, refuses new connections meanwhile, then stops everything', async () => {
    // 60 tokens 75 ms apart: a stream of about 4.5 s
    const c = await startUp([mockSitter('slow', ['slow-model'], ['--itl-ms', '75', '--output-tokens', '60'])]);
    const { up } = c;
    const pids = [...servicePids(c.dataDir), ...(await enginePids(c))];
    assert.equal(pids.length, 4, `registry, router, babysitter and engine: ${pids}`);

    const stream = openStream(`http://127.0.0.1:${c.routerPort}/v1/chat/completions`, {
      model: 'slow-model',
      messages: [{ role: 'user', content: 'tell me a long story' }],
      stream: true,
      max_tokens: 60,
    });
    await stream.first;
    assert.equal(stream.finished(), false);
    up.signal('SIGINT');

    // the router stops taking connections at once, while the babysitter (and its engine) still runs
    await waitFor(async () => (await connectError(c.routerPort)) === 'ECONNREFUSED', 'router refuses new connections', 20_000, 50);
    assert.equal(stream.finished(), false, 'the stream is still going when new connections are refused');
    assert.equal((await http('GET', `http://127.0.0.1:${c.ports[0]! + 1}/health`)).status, 200, 'the backend is still up while the router drains');

    const result = await stream.result;
    assert.equal(result.error, undefined);
    assert.equal(result.done, true, 'the stream ends with data: [DONE]');
    assert.ok(result.chunks > 10);

    const { code } = await up.exited;
    assert.equal(code, 0, up.stderrText);
    for (const pid of pids) assert.equal(pidAlive(pid), false, `pid ${pid} gone`);
    const order = ['router    stopping', 'stopping the babysitter', 'registry  stopping', 'cluster stopped'].map((s) => up.stdout.indexOf(s));
    assert.ok(order.every((i, k) => i !== -1 && (k === 0 || i > order[k - 1]!)), `stop order on the console:\n${up.stdout}`);
  });
});

describe('up: no process left behind', { timeout: 120_000 }, () => {
  it('when up is killed with SIGKILL, every service it started and every engine stops within seconds', async () => {
    const c = await startUp([mockSitter('k-a', ['k-model']), mockSitter('k-b', ['k-model'])]);
    const pids = [...servicePids(c.dataDir), ...(await enginePids(c))];
    assert.equal(pids.length, 6, `registry, router, 2 babysitters, 2 engines: ${pids}`);
    process.kill(c.up.proc.pid!, 'SIGKILL');
    await c.up.exited;
    await waitFor(() => pids.every((p) => !pidAlive(p)), `every process gone (left: ${pids.filter(pidAlive)})`, 15_000, 50);
    // each service stopped itself gracefully, the babysitters taking their engines with them
    const logs = join(c.dataDir, 'logs');
    for (const f of readdirSync(logs)) {
      assert.match(readFileSync(join(logs, f), 'utf8'), /"reason":"parent process exited","msg":"shutting down"/, f);
    }
    for (const f of readdirSync(logs).filter((f) => f.startsWith('k-'))) assert.match(readFileSync(join(logs, f), 'utf8'), /"msg":"backend stopped"/, f);
    for (const port of [c.registryPort, c.routerPort, ...c.ports, ...c.ports.map((p) => p + 1)]) assert.equal(await connectError(port), 'ECONNREFUSED', `port ${port} closed`);
  });
});

describe('up: a backend that cannot start', { timeout: 120_000 }, () => {
  it('reports each failure once with the engine\'s last output, stops waiting early, and the table says why', { timeout: 90_000 }, async () => {
    const bad = () => [
      'name = "bad"',
      '[babysitter.babysitter]',
      'restart_delay = 0.5',
      'max_restart_delay = 1',
      '[babysitter.backend]',
      'type = "command"',
      'command = "sh -c"',
      `args = ["echo loading the model; echo 'ModuleNotFoundError: No module named vllm' >&2; exit 3"]`,
      'models = ["bad-model"]',
    ];
    // a wait timeout of 10 minutes: the table within a minute shows up stopped waiting on its own
    const c = await startUp([mockSitter('good', ['good-model']), bad], ['--wait-timeout', '600']);
    const { up } = c;
    // the first report may come after more than one failure (polls are 1 s apart), or once the
    // next start is under way already
    assert.match(up.stdout, /bad\s+crashed: exit 3; (restart \d+ in [\d.]+ s|restarted \(attempt \d+\))( \(\d failures since the last report\))?; its last output:\n(\s+\| (loading the model|ModuleNotFoundError: No module named vllm)\n)+/);
    assert.match(up.stdout, /\| ModuleNotFoundError: No module named vllm\n/);
    assert.match(up.stdout, /bad\s+keeps failing \(\d+ failed starts, never ready\): not waiting for it; it is retried in the background/);
    assert.match(up.stdout, /good\s+http:\/\/127\.0\.0\.1:\d+ \(babysitter :\d+\)\s+good-model\s+ready\n/);
    assert.match(up.stdout, /bad\s+http:\/\/127\.0\.0\.1:\d+ \(babysitter :\d+\)\s+-\s+(backoff \(crashed: exit 3, restart \d+ in [\d.]+ s\)|starting \(attempt \d+; last: crashed: exit 3\))\n/);

    // it keeps reporting while the cluster runs: several times the restart delay and the poll period
    await waitFor(() => /bad\s+crashed: exit 3; restart (9|\d\d) in/.test(up.stdout), 'failures reported after the table', 60_000);
    const restarts = [...up.stdout.matchAll(/bad\s+crashed: exit 3; restart (\d+) in/g)].map((m) => Number(m[1]));
    assert.ok(restarts.every((n, i) => i === 0 || n > restarts[i - 1]!), `one line per failure, never repeated: ${restarts}`);
    assert.equal(up.stdout.match(/its last output:/g)?.length, 1, 'the same output is shown once');
    assert.ok((up.stdout.match(/same output as before/g)?.length ?? 0) >= 5);
    assert.equal(up.stderrText, '', 'the JSON log stays quiet: the console has the story');

    up.signal('SIGINT');
    assert.equal((await up.exited).code, 0);
  });
});

describe('up: binds loopback unless told otherwise', { timeout: 120_000 }, () => {
  it('every service and engine listens on 127.0.0.1 only', async () => {
    const c = await startUp([mockSitter('local', ['local-model'])]);
    const ports = [c.registryPort, c.routerPort, c.ports[0]!, c.ports[0]! + 1];
    const found = listeners(ports);
    assert.deepEqual([...new Set(found.map((l) => l.port))].sort(), [...ports].sort(), JSON.stringify(found));
    for (const l of found) assert.deepEqual([l.file, l.local], ['/proc/net/tcp', '0100007F'], `port ${l.port} listens on loopback only`);
    const outside = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
    if (outside) for (const port of ports) assert.equal(await connectError(port, outside.address), 'ECONNREFUSED', `${outside.address}:${port}`);
    assert.doesNotMatch(c.up.stdout, /all interfaces/);
    c.up.signal('SIGINT');
    assert.equal((await c.up.exited).code, 0);
  });

  it('up --bind 0.0.0.0 exposes them, and the table says so', async () => {
    const c = await startUp([mockSitter('exposed', ['exposed-model'])], ['--bind', '0.0.0.0']);
    const ports = [c.registryPort, c.routerPort, c.ports[0]!, c.ports[0]! + 1];
    const found = listeners(ports);
    assert.equal(found.length, 4, JSON.stringify(found));
    for (const l of found) assert.equal(l.local, '00000000', `port ${l.port} on all interfaces`);
    assert.match(c.up.stdout, new RegExp(`router\\s+http://127\\.0\\.0\\.1:${c.routerPort} \\(all interfaces\\)`));
    c.up.signal('SIGINT');
    assert.equal((await c.up.exited).code, 0);
  });
});
