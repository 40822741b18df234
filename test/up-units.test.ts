import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { createServer, type Server } from 'node:net';
import { describeState, failureCount, toSitterInfo, type SitterInfo } from '../src/babysitter/info.js';
import { changes, crashLooping, newLines, newWatchState, outputTail } from '../src/up/backend-watch.js';
import { applyLaunchEnvironment, DEFAULT_CLUSTER, parseCluster, registryUrlOf, resolveBinds } from '../src/up/cluster-file.js';
import { formatTable, portProblem } from '../src/up/cluster.js';
import { UpConsole } from '../src/up/console.js';
import { tempDir } from './helpers/services.js';

describe('cluster file', () => {
  it('reads the default: registry 18000, router 8000, three mocks with overlapping models', () => {
    const plan = parseCluster(DEFAULT_CLUSTER, '(default)');
    assert.equal(plan.registry.port, 18000);
    assert.equal(plan.router.port, 8000);
    assert.deepEqual(plan.babysitters.map((b) => [b.name, b.port]), [['mock-a', 8100], ['mock-b', 8200], ['mock-c', 8300]]);
  });

  it('refuses unknown keys, bad ports, duplicates and missing files with the key named', async () => {
    const cases: Array<[string, RegExp]> = [
      ['[extra]\n', /key 'extra': unknown section/],
      ['[registry]\nport = "x"\n', /key 'registry.port'/],
      ['[router]\nturbo = 1\n', /unknown key 'router\.turbo'/],
      ['[router]\nheartbeat-timeout = 1\n', /unknown key 'router\.heartbeat-timeout' \(did you mean 'registry\.heartbeat-timeout'\?\)/],
      // a short name of a key of the same section beats the same name in another section
      ['[router]\nport = 8500\n', /unknown key 'router\.port' \(did you mean 'router\.router-port'\?\)/],
      ['[router]\nenabled = "no"\n', /key 'router.enabled'/],
      ['[[babysitter]]\nname = "a"\n', /key 'babysitter\[0\].port'/],
      ['[[babysitter]]\nport = 8100\n', /key 'babysitter\[0\].backend': required/],
      ['[[babysitter]]\nconfig = "missing.toml"\n', /key 'babysitter\[0\].config': file not found/],
      ['[[babysitter]]\nname = "a"\nport = 1\n[babysitter.backend]\ntype = "mock"\n[[babysitter]]\nname = "a"\nport = 3\n[babysitter.backend]\ntype = "mock"\n', /duplicate babysitter name 'a'/],
      ['[registry\n', /cluster file c\.toml: /],
    ];
    for (const [text, pattern] of cases) assert.throws(() => parseCluster(text, 'c.toml'), pattern, text);
  });
});

describe('launch environment of the original scripts', () => {
  it('applies ports, intervals, host, registry URLs and components', () => {
    const plan = applyLaunchEnvironment(parseCluster(DEFAULT_CLUSTER, '(default)'), {
      REGISTRY_PORT: '19000',
      ROUTER_PORT: '9000',
      ROUTER_HEALTH_INTERVAL: '7',
      ROUTER_REGISTRY_SYNC_INTERVAL: '3',
      REGISTRY_CLEANUP_INTERVAL: '11',
      BABYSITTER_HOST: '10.0.0.5',
      LAUNCH_COMPONENTS: 'registry,babysitter',
    }, process.cwd());
    assert.equal(plan.registry.port, 19000);
    assert.equal(plan.registry.flags['cleanup-interval'], '11');
    assert.equal(registryUrlOf(plan), 'http://127.0.0.1:19000');
    assert.equal(plan.router.port, 9000);
    assert.equal(plan.router.flags['health-interval'], '7');
    assert.equal(plan.router.enabled, false);
    assert.equal(plan.babysitterFlags.host, '10.0.0.5');
    assert.equal(plan.babysitters.length, 3);
  });

  it('takes babysitters from BABYSITTER_CONFIGS under config/ and only babysitters with LAUNCH_COMPONENTS=babysitter', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'config'));
    await writeFile(join(dir, 'config', 'worker_a.toml'), 'name = "worker-a"\nport = 8100\nregistry_url = "http://10.0.0.1:18000"\n[backend]\ntype = "mock"\nmodels = ["m"]\n');
    const plan = applyLaunchEnvironment(parseCluster(DEFAULT_CLUSTER, '(default)'), { BABYSITTER_CONFIGS: 'worker_a.toml', LAUNCH_COMPONENTS: 'babysitter', REGISTRY_URL: 'http://10.0.0.1:18000' }, dir);
    assert.equal(plan.registry.enabled, false);
    assert.equal(plan.router.enabled, false);
    assert.deepEqual(plan.babysitters.map((b) => [b.name, b.port, b.hasRegistryUrl]), [['worker-a', 8100, true]]);
    assert.equal(registryUrlOf(plan), 'http://10.0.0.1:18000');
    assert.throws(() => applyLaunchEnvironment(parseCluster('', 'x'), { LAUNCH_COMPONENTS: 'gpu' }, dir), /LAUNCH_COMPONENTS: unknown component 'gpu'/);
    const none = applyLaunchEnvironment(parseCluster(DEFAULT_CLUSTER, '(default)'), { LAUNCH_COMPONENTS: 'none' }, dir);
    assert.equal(none.registry.enabled || none.router.enabled || none.babysitters.length > 0, false);
  });

  it('formats the summary table in aligned columns', () => {
    const t = formatTable([{ service: 'router', url: 'http://127.0.0.1:8000', models: 'a, b', state: 'ready' }]);
    assert.deepEqual(t.split('\n'), ['SERVICE  URL                    MODELS  STATE', 'router   http://127.0.0.1:8000  a, b    ready']);
  });
});

describe('cluster plan defaults', () => {
  it('a file without [registry] or [router] gets the default cluster\'s ports, not the binaries\' 8081/8080', () => {
    const plan = parseCluster('[[babysitter]]\nname = "a"\nport = 8100\n[babysitter.backend]\ntype = "mock"\nmodels = ["m"]\n', 'c.toml');
    assert.equal(plan.registry.port, 18000);
    assert.equal(plan.router.port, 8000);
    assert.equal(registryUrlOf(resolveBinds(plan)), 'http://127.0.0.1:18000');
  });

  it('binds every service to 127.0.0.1 unless its section says otherwise', () => {
    const plan = resolveBinds(parseCluster(DEFAULT_CLUSTER, '(default)'));
    assert.equal(plan.registry.flags.host, '127.0.0.1');
    assert.equal(plan.router.flags.host, '127.0.0.1');
    assert.deepEqual(plan.babysitters.map((b) => b.bind), ['127.0.0.1', '127.0.0.1', '127.0.0.1']);
    const text = [
      '[registry]', 'host = "0.0.0.0"',
      '[router]', 'host = "10.1.2.3"',
      '[[babysitter]]', 'name = "own-bind"', 'port = 8100', 'bind = "0.0.0.0"', '[babysitter.backend]', 'type = "mock"', 'models = ["m"]',
      '[[babysitter]]', 'name = "advertised"', 'port = 8200', 'host = "10.0.0.5"', '[babysitter.backend]', 'type = "mock"', 'models = ["m"]',
      '[[babysitter]]', 'name = "local"', 'port = 8300', 'host = "127.0.0.1"', '[babysitter.backend]', 'type = "mock"', 'models = ["m"]',
      '',
    ].join('\n');
    const own = resolveBinds(parseCluster(text, 'c.toml'));
    assert.equal(own.registry.host, '0.0.0.0');
    assert.equal(own.router.host, '10.1.2.3');
    // a babysitter advertised at an address others use is never bound to loopback only
    assert.deepEqual(own.babysitters.map((b) => b.bind), ['0.0.0.0', '0.0.0.0', '127.0.0.1']);
    // a wildcard-bound registry is reached over loopback by the cluster's own services
    assert.equal(registryUrlOf(own), 'http://127.0.0.1:18000');
  });

  it('up --bind sets the default; BABYSITTER_HOST makes babysitters reachable; REGISTRY_URL wins', () => {
    const all = resolveBinds(parseCluster(DEFAULT_CLUSTER, '(default)'), '0.0.0.0');
    assert.deepEqual([all.registry.host, all.router.host, ...all.babysitters.map((b) => b.bind)], ['0.0.0.0', '0.0.0.0', '0.0.0.0', '0.0.0.0', '0.0.0.0']);
    const specific = resolveBinds(parseCluster(DEFAULT_CLUSTER, '(default)'), '10.0.0.1');
    assert.equal(registryUrlOf(specific), 'http://10.0.0.1:18000');
    const env = resolveBinds(applyLaunchEnvironment(parseCluster(DEFAULT_CLUSTER, '(default)'), { BABYSITTER_HOST: 'gpu-7.example', REGISTRY_URL: 'http://10.0.0.1:18000' }, process.cwd()));
    assert.equal(env.registry.host, '127.0.0.1');
    assert.deepEqual(env.babysitters.map((b) => b.bind), ['0.0.0.0', '0.0.0.0', '0.0.0.0']);
    assert.equal(registryUrlOf(env), 'http://10.0.0.1:18000');
  });

  it('reads the router\'s own config file for its address, port and drain timeout (flags still win)', async () => {
    const dir = await tempDir();
    const conf = join(dir, 'router.toml');
    await writeFile(conf, 'host = "0.0.0.0"\nrouter_port = 9123\ndrain-timeout = 90\n');
    const plan = resolveBinds(parseCluster(`[router]\nconfig = ${JSON.stringify(conf)}\n`, 'c.toml'));
    assert.equal(plan.router.port, 9123);
    assert.equal(plan.router.host, '0.0.0.0');
    assert.equal(plan.router.flags.host, undefined, 'no --host flag that would override the file');
    assert.equal(plan.router.drainSeconds, 90);
    const flagged = resolveBinds(parseCluster(`[router]\nconfig = ${JSON.stringify(conf)}\ndrain-timeout = 5\nrouter-port = 9000\n`, 'c.toml'));
    assert.equal(flagged.router.drainSeconds, 5);
    assert.equal(flagged.router.port, 9000);
    assert.equal(resolveBinds(parseCluster('', 'c.toml')).router.drainSeconds, 30);
  });

  it('reads bind, host and stop grace of babysitters in their own files', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a.toml'), 'name = "a"\nport = 8100\nbind = "0.0.0.0"\n[babysitter]\nstop_grace = 90\n[backend]\ntype = "mock"\nmodels = ["m"]\n');
    await writeFile(join(dir, 'b.toml'), 'name = "b"\nport = 8200\n[backend]\ntype = "mock"\nmodels = ["m"]\n');
    const plan = resolveBinds(parseCluster('[[babysitter]]\nconfig = "a.toml"\n[[babysitter]]\nconfig = "b.toml"\n', join(dir, 'c.toml')));
    assert.deepEqual(plan.babysitters.map((b) => [b.name, b.bind, b.stopGraceSeconds]), [['a', '0.0.0.0', 90], ['b', '127.0.0.1', undefined]]);
  });
});

describe('port check', () => {
  const listen = (port: number, host: string) =>
    new Promise<Server>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(port, host, () => resolve(s));
    });

  it('tests the address the service binds: a wildcard listener takes the port on 127.0.0.1 too', async () => {
    const wild = await listen(0, '0.0.0.0');
    const port = (wild.address() as { port: number }).port;
    assert.equal(await portProblem(port, '127.0.0.1', 'router'), `router: port ${port} on 127.0.0.1 is already in use`);
    assert.match((await portProblem(port, '0.0.0.0', 'router')) ?? 'free', /already in use/);
    wild.close();
    const local = await listen(0, '127.0.0.1');
    const p2 = (local.address() as { port: number }).port;
    assert.match((await portProblem(p2, '127.0.0.1', 'registry')) ?? 'free', /^registry: port \d+ on 127\.0\.0\.1 is already in use$/);
    local.close();
    assert.equal(await portProblem(p2, '127.0.0.1', 'registry'), undefined, 'free once closed');
  });

  it('names an address that is not on this machine instead of calling the port taken', async () => {
    // TEST-NET-2 (RFC 5737): never assigned to a local interface
    assert.match((await portProblem(18000, '198.51.100.7', 'registry')) ?? 'free', /registry: cannot bind address 198\.51\.100\.7/);
  });

  it('counts a server on the IPv6 loopback as taking the port (it would answer localhost:<port>)', async (t) => {
    let v6: Server;
    try {
      v6 = await listen(0, '::1');
    } catch {
      t.skip('no IPv6 loopback here');
      return;
    }
    const port = (v6.address() as { port: number }).port;
    assert.match((await portProblem(port, '127.0.0.1', 'router')) ?? 'free', /already in use on ::1/);
    v6.close();
  });
});

describe('backend reports', () => {
  const info = (over: Partial<SitterInfo>): SitterInfo => ({
    state: 'starting', restart_count: 0, last_down_reason: null, last_exit_code: null, last_exit_signal: null, next_start_in_s: null, not_ready_reason: null, models: [], recent_logs: [], ...over,
  });

  it('reads /info defensively', () => {
    assert.equal(toSitterInfo(undefined), undefined);
    assert.equal(toSitterInfo({ state: 3 }), undefined);
    assert.deepEqual(toSitterInfo({ state: 'ready', models: ['a', 1], recent_logs: 'x' }), info({ state: 'ready', models: ['a'] }));
  });

  it('counts each failure once whichever state a poll sees', () => {
    assert.equal(failureCount(info({})), 0);
    assert.equal(failureCount(info({ state: 'backoff' })), 1);
    assert.equal(failureCount(info({ state: 'starting', restart_count: 1 })), 1);
    assert.equal(failureCount(info({ state: 'backoff', restart_count: 1 })), 2);
    assert.equal(failureCount(info({ state: 'failed', restart_count: 5 })), 6);
  });

  it('gives the state with its reason', () => {
    const crashed = { last_down_reason: 'crashed', last_exit_code: 1 };
    assert.equal(describeState(info({ state: 'ready' })), 'ready');
    assert.equal(describeState(info({})), 'starting');
    assert.equal(describeState(info({ state: 'backoff', restart_count: 2, next_start_in_s: 19.6, ...crashed })), 'backoff (crashed: exit 1, restart 3 in 20 s)');
    assert.equal(describeState(info({ state: 'backoff', next_start_in_s: 4.44, last_down_reason: 'crashed', last_exit_signal: 'SIGKILL' })), 'backoff (crashed: SIGKILL, restart 1 in 4.4 s)');
    assert.equal(describeState(info({ state: 'starting', restart_count: 3, ...crashed })), 'starting (attempt 4; last: crashed: exit 1)');
    assert.equal(describeState(info({ state: 'failed', restart_count: 10, ...crashed })), 'failed (crashed: exit 1; gave up after 10 restarts)');
    assert.equal(describeState(info({ state: 'backoff', last_down_reason: 'hung', last_exit_code: 1, next_start_in_s: 5 })), 'backoff (hung, restart 1 in 5 s)');
    assert.equal(
      describeState(info({ state: 'backoff', last_down_reason: 'spawn failed', next_start_in_s: 5, recent_logs: ['[babysitter] spawn python3 ENOENT'] })),
      'backoff (spawn failed: spawn python3 ENOENT, restart 1 in 5 s)',
    );
  });

  it('finds the lines added to the babysitter\'s window, also when it slides or repeats', () => {
    assert.deepEqual(newLines([], ['a', 'b']), ['a', 'b']);
    assert.deepEqual(newLines(['a', 'b'], ['a', 'b', 'c']), ['c']);
    assert.deepEqual(newLines(['a', 'b', 'c'], ['b', 'c', 'd', 'e']), ['d', 'e']);
    assert.deepEqual(newLines(['x', 'y'], ['x', 'y', 'x', 'y']), ['x', 'y']);
    assert.deepEqual(newLines(['a', 'b'], ['a', 'b']), []);
    assert.deepEqual(outputTail(['[stderr] one', '[stdout] ', '[stdout] two', 'x'.repeat(300)], 2), ['two', `${'x'.repeat(199)}…`]);
  });

  it('reports a start, each failure once with the new output, and the same output only once', () => {
    const st = newWatchState();
    const crash = (restarts: number, logs: string[]) => info({ state: 'backoff', restart_count: restarts, last_down_reason: 'crashed', last_exit_code: 1, next_start_in_s: 5, recent_logs: logs });
    assert.deepEqual(changes(st, info({})), [{ message: 'starting backend', detail: [] }]);
    assert.deepEqual(changes(st, info({})), [], 'nothing changed: nothing printed');
    const first = ['[stdout] loading', '[stderr] Traceback', '[stderr] ModuleNotFoundError: vllm'];
    assert.deepEqual(changes(st, crash(0, first)), [{ message: 'crashed: exit 1; restart 1 in 5 s; its last output:', detail: ['loading', 'Traceback', 'ModuleNotFoundError: vllm'] }]);
    assert.deepEqual(changes(st, crash(0, first)), [], 'the same poll result again: no repeat');
    assert.deepEqual(changes(st, info({ restart_count: 1, recent_logs: first })), []);
    const second = [...first, ...first];
    assert.deepEqual(changes(st, crash(1, second)), [{ message: 'crashed: exit 1; restart 2 in 5 s; same output as before', detail: [] }]);
    // two failures between polls, and new output
    const third = [...second, '[stderr] CUDA out of memory'];
    assert.deepEqual(changes(st, crash(3, third)), [{ message: 'crashed: exit 1; restart 4 in 5 s (2 failures since the last report); its last output:', detail: ['CUDA out of memory'] }]);
    assert.equal(crashLooping(st), true);
    assert.deepEqual(changes(st, info({ state: 'ready', restart_count: 4, models: ['m'], recent_logs: third })), [{ message: 'ready (attempt 5): m', detail: [] }]);
    assert.equal(crashLooping(st), false);
    // a babysitter restarted by up counts afresh
    assert.deepEqual(changes(st, info({ recent_logs: [] })), [{ message: 'starting backend', detail: [] }]);
  });

  it('reports a running backend that stops answering its readiness probe, and its return, once each', () => {
    const st = newWatchState();
    changes(st, info({ state: 'ready', models: ['m'] }));
    const hung = info({ state: 'not-ready', models: ['m'], not_ready_reason: '/health: no answer within 5 s' });
    assert.deepEqual(changes(st, hung), [{ message: 'not ready: /health: no answer within 5 s; no new requests until it answers again', detail: [] }]);
    assert.deepEqual(changes(st, hung), [], 'no repeat while it stays not ready');
    assert.equal(describeState(hung), 'not-ready (/health: no answer within 5 s)');
    assert.deepEqual(changes(st, info({ state: 'ready', models: ['m'] })), [{ message: 'answers again: routable', detail: [] }]);
  });

  it('counts as crash-looping only a backend never ready with 3 failed starts, or one that gave up', () => {
    const st = newWatchState();
    changes(st, info({ state: 'backoff', restart_count: 1, last_down_reason: 'crashed' }));
    assert.equal(crashLooping(st), false);
    changes(st, info({ state: 'backoff', restart_count: 2, last_down_reason: 'crashed' }));
    assert.equal(crashLooping(st), true);
    const gaveUp = newWatchState();
    changes(gaveUp, info({ state: 'failed', restart_count: 0, last_down_reason: 'crashed' }));
    assert.equal(crashLooping(gaveUp), true);
    assert.equal(crashLooping(newWatchState()), false);
  });

  it('prints one aligned, time-stamped line per event, output indented under it', () => {
    let text = '';
    const out = new UpConsole((t) => (text += t));
    out.setNames(['registry', 'a-long-babysitter']);
    out.say('router', 'ready on http://127.0.0.1:8000');
    out.say('a-long-babysitter', 'crashed: exit 1', ['boom']);
    const lines = text.split('\n');
    assert.match(lines[0]!, /^\d\d:\d\d:\d\d router {13}ready on http:\/\/127\.0\.0\.1:8000$/);
    assert.match(lines[1]!, /^\d\d:\d\d:\d\d a-long-babysitter {2}crashed: exit 1$/);
    assert.equal(lines[2], `${' '.repeat(9 + 17 + 2)}| boom`);
  });
});
