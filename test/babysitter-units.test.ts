import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { buildCommandLine } from '../src/babysitter/command-line.js';
import { babysitterConfig } from '../src/babysitter/config.js';
import { babysitterSpec } from '../src/babysitter/spec.js';
import { parseValue, resolveSettings } from '../src/common/settings.js';
import { splitShellWords } from '../src/common/shell-words.js';
import { programProblem, watchedCommand } from '../src/babysitter/group-watch.js';
import { ourProcesses, parseListeners } from '../src/babysitter/port-owner.js';
import { parseProcStat, procStat } from '../src/common/proc-stat.js';
import { createLogger } from '../src/common/log.js';
import type { RegistryClient } from '../src/registry/client.js';
import type { Registration } from '../src/registry/record.js';
import { RegistrationKeeper } from '../src/registry/registration-keeper.js';
import { tempDir } from './helpers/services.js';

const resolve = (argv: string[]) => babysitterConfig(resolveSettings(babysitterSpec('infini-babysitter'), argv, {}));
const envSetting = babysitterSpec().settings.find((s) => s.key === 'env')!;
const parseEnvFlags = (values: string[]) => parseValue(envSetting, values, '--env');

describe('babysitter configuration', () => {
  it('splits --args like a shell, even when the value begins with dashes', () => {
    assert.deepEqual(splitShellWords(`--model '/m x' --port 8100 "a \\"b\\"" c\\ d`), ['--model', '/m x', '--port', '8100', 'a "b"', 'c d']);
    const cfg = resolve(['--port', '8100', '--command', 'conda run -n env python', '--args', '--model /m --port 8100']);
    assert.deepEqual(cfg.backend.args, ['--model', '/m', '--port', '8100']);
    const cmd = buildCommandLine(cfg);
    assert.deepEqual([cmd.program, ...cmd.args], ['conda', 'run', '-n', 'env', 'python', '--model', '/m', '--port', '8100']);
  });

  it('takes --env as repeatable K=V and as the original space-separated list', () => {
    assert.deepEqual(parseEnvFlags(['A=1 B=2', 'C=hello world', 'D=']), { A: '1', B: '2', C: 'hello world', D: '' });
    assert.throws(() => parseEnvFlags(['novalue']), /--env/);
  });

  it('applies flag > file > default, and keeps TOML args elements whole', async () => {
    const dir = await tempDir();
    const file = join(dir, 'b.toml');
    await writeFile(file, `name = "file-name"\nhost = "10.0.0.5"\nport = 8100\nregistry_url = "http://reg:18000/"\n[babysitter]\nrestart_delay = 2\nheartbeat_interval = 10\n[backend]\ntype = "command"\ncommand = "python3 server.py"\nargs = ["--name", "a b"]\nenv = { TOKEN = "secret" }\n[metadata]\ncache_type = "static"\nstatic = true\nwhen = 2026-01-01T00:00:00Z\n`);
    const fromFile = resolve(['--config-file', file]);
    assert.equal(fromFile.name, 'file-name');
    assert.equal(fromFile.host, '10.0.0.5');
    assert.equal(fromFile.registryUrl, 'http://reg:18000');
    assert.equal(fromFile.restartDelayMs, 2000);
    assert.equal(fromFile.heartbeatIntervalMs, 10_000);
    assert.equal(fromFile.maxRestarts, 10_000);
    assert.equal(fromFile.stopGraceMs, 30_000);
    assert.equal(fromFile.startupTimeoutMs, 1_200_000);
    assert.deepEqual(fromFile.backend.args, ['--name', 'a b']);
    assert.deepEqual(fromFile.backend.env, { TOKEN: 'secret' });
    assert.deepEqual(fromFile.metadata, { cache_type: 'static', static: true, when: '2026-01-01T00:00:00.000Z' });
    const overridden = resolve(['--config-file', file, '--host', 'localhost', '--port', '9100', '--restart-delay', '7', '--name', 'cli-name', '--env', 'X=1']);
    assert.equal(overridden.host, 'localhost', 'a flag wins even when it says localhost');
    assert.equal(overridden.port, 9100);
    assert.equal(overridden.restartDelayMs, 7000);
    assert.equal(overridden.name, 'cli-name');
    assert.deepEqual(overridden.backend.env, { TOKEN: 'secret', X: '1' });
  });

  it('names the default service after the type and port', () => {
    assert.equal(resolve(['--port', '8100', '--command', 'x']).name, 'command-8100');
    assert.equal(resolve(['--port', '8100', '--service-type', 'VLLM', '--path', '/m']).name, 'vllm-8100');
    assert.equal(resolve(['--port', '8100', '--service-type', 'mock', '--args', 'a,b']).backend.models!.join(), 'a,b');
  });

  it('refuses bad configuration with one line naming the file and key', async () => {
    const dir = await tempDir();
    const cases: Array<[string, RegExp]> = [
      ['port = 8100\n[backend]\ntype = "nope"\n', /key 'backend\.type': unknown backend type 'nope'/],
      ['[backend]\ntype = "command"\ncommand = "x"\n', /key 'port': required/],
      ['port = "8100"\n[backend]\ntype = "command"\ncommand = "x"\n', /key 'port': expected an integer/],
      ['port = 8100\n[backend]\ntype = "command"\n', /key 'backend\.command': required/],
      ['port = 8100\n[backend]\ntype = "command"\ncommand = "x"\nargs = "not an array"\n', /key 'backend\.args': expected arguments \(an array of strings/],
      ['port = 8100\n[backend]\ntype = "vllm"\n', /key 'backend\.model'/],
      ['port = 8100\n[babysitter]\nrestart_delay = "soon"\n[backend]\ntype = "command"\ncommand = "x"\n', /key 'babysitter\.restart_delay'/],
      ['port = 8100\n', /key 'backend\.command': required/],
      ['port = 8100\nextra_key = 1\n[backend]\ntype = "command"\ncommand = "x"\n', /unknown key 'extra_key'/],
      ['port = 8100\n[babysitter]\nheartbeat_intervl = 5\n[backend]\ntype = "command"\ncommand = "x"\n', /unknown key 'babysitter\.heartbeat_intervl' \(did you mean 'babysitter\.heartbeat_interval'\?\)/],
      ['port = 8100\n[babysitter]\nregistry_url = "http://r"\n[backend]\ntype = "command"\ncommand = "x"\n', /unknown key 'babysitter\.registry_url' \(did you mean 'registry[-_]url'\?\)/],
      // a nested key in the wrong section points to the original's section, not the flag
      ['port = 8100\n[backend]\ntype = "command"\ncommand = "x"\nrestart_delay = 5\n', /unknown key 'backend\.restart_delay' \(did you mean 'babysitter\.restart_delay'\?\)/],
      ['port = [oops\n', /config .*b\d+\.toml: invalid TOML at line 1, column \d+/],
    ];
    for (const [i, [text, pattern]] of cases.entries()) {
      const file = join(dir, `b${i}.toml`);
      await writeFile(file, text);
      assert.throws(() => resolve(['--config-file', file]), (err: Error) => pattern.test(err.message) && err.message.includes(file) && !err.message.includes('\n'), text);
    }
    assert.throws(() => resolve(['--command', 'x']), /--port is required/);
    assert.throws(() => resolve(['--port', '1', '--service-type', 'tgi']), /--service-type: unknown backend type 'tgi'/);
  });
});

describe('babysitter command lines per backend type', () => {
  const line = (argv: string[]) => {
    const c = buildCommandLine(resolve(argv));
    return [c.program, ...c.args];
  };

  it('builds the presets', () => {
    assert.deepEqual(line(['--port', '8100', '--service-type', 'vllm', '--path', '/models/q', '--args', '--tp 2']), ['python3', '-m', 'vllm.entrypoints.openai.api_server', '--model', '/models/q', '--port', '8100', '--host', '127.0.0.1', '--tp', '2']);
    assert.deepEqual(line(['--port', '8100', '--service-type', 'sglang', '--path', 'Qwen/Qwen3-8B', '--bind', '127.0.0.1']), ['python3', '-m', 'sglang.launch_server', '--model-path', 'Qwen/Qwen3-8B', '--port', '8100', '--host', '127.0.0.1']);
    assert.deepEqual(line(['--port', '8100', '--service-type', 'llama.cpp', '--path', '/m.gguf', '--args', '-c 4096']), ['llama-server', '-m', '/m.gguf', '--port', '8100', '--host', '127.0.0.1', '-c', '4096']);
    assert.deepEqual(line(['--port', '8100', '--service-type', 'infinilm', '--path', '/m', '--work-dir', '/opt/infinilm']), ['python3', '/opt/infinilm/launch_server.py', '--port', '8100', '--host', '127.0.0.1', '--model-path', '/m']);
    assert.deepEqual(line(['--port', '8100', '--service-type', 'InfiniLM-Rust', '--path', 'svc.toml']), ['xtask', 'service', 'svc.toml', '-p', '8100']);
    const mock = line(['--port', '8100', '--service-type', 'mock', '--args', 'a,b', '--name', 'n']);
    assert.equal(mock[0], process.execPath);
    const cli = mock.findIndex((a) => /dist\/src\/cli\.js$/.test(a));
    assert.ok(cli > 0);
    assert.deepEqual(mock.slice(cli + 1), ['mock', '--port', '8100', '--host', '127.0.0.1', '--models', 'a,b', '--name', 'n-server']);
    assert.ok(!mock.includes('--registry-url'), 'the mock never registers itself under the babysitter name');
  });
});

describe('babysitter readiness settings', () => {
  it('defaults to a 5 s readiness probe with a 5 s timeout; flag > file', async () => {
    const cfg = resolve(['--port', '8100', '--command', 'x']);
    assert.equal(cfg.readinessIntervalMs, 5000);
    assert.equal(cfg.readinessTimeoutMs, 5000);
    assert.equal(cfg.livenessIntervalMs, 30_000, 'liveness keeps its own timers');
    const dir = await tempDir();
    const file = join(dir, 'r.toml');
    await writeFile(file, 'port = 8100\n[babysitter]\nreadiness_interval = 2\nreadiness_timeout = 1.5\n[backend]\ntype = "command"\ncommand = "x"\n');
    const fromFile = resolve(['--config-file', file]);
    assert.equal(fromFile.readinessIntervalMs, 2000);
    assert.equal(fromFile.readinessTimeoutMs, 1500);
    assert.equal(resolve(['--config-file', file, '--readiness-interval', '0.5']).readinessIntervalMs, 500);
    await writeFile(file, 'port = 8100\n[babysitter]\nreadiness_timeout = 0\n[backend]\ntype = "command"\ncommand = "x"\n');
    assert.throws(() => resolve(['--config-file', file]), /key 'babysitter\.readiness_timeout'/);
  });
});

describe('process table and socket parsing', () => {
  it('reads /proc/<pid>/stat fields after the last parenthesis', () => {
    const line = '4242 (my (odd) engine) S 1 4242 4242 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 7 0 987654 1000 200 18446744073709551615';
    assert.deepEqual(parseProcStat(4242, line), { pid: 4242, comm: 'my (odd) engine', state: 'S', ppid: 1, pgrp: 4242, startTicks: 987654 });
    assert.equal(parseProcStat(1, 'garbage'), undefined);
    const me = procStat(process.pid)!;
    assert.equal(me.pid, process.pid);
    assert.ok(me.startTicks > 0);
  });

  it('finds the inodes of sockets listening on a port, IPv4 and IPv6', () => {
    const tcp = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0',
      '   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 100 0 0 10 0',
      '   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1 0 100 0 0 10 0',
    ].join('\n');
    assert.deepEqual(parseListeners(tcp, 8080), [111], 'only LISTEN sockets of that port');
    const tcp6 = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n' +
      '   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1 0 100 0 0 10 0';
    assert.deepEqual(parseListeners(tcp6, 8080), [444]);
  });

  it('counts the group and the leader\'s descendants as ours, not an orphan', () => {
    const p = (pid: number, ppid: number, pgrp: number) => ({ pid, comm: 'x', ppid, pgrp, state: 'S', startTicks: 1 });
    const procs = [p(100, 1, 100), p(101, 100, 100), p(102, 101, 102), p(103, 102, 103), p(200, 1, 100), p(300, 1, 300)];
    assert.deepEqual(ourProcesses(procs, 100).map((x) => x.pid), [100, 101, 102, 103, 200]);
  });

  it('names a program that cannot be run before a shell turns it into exit 127', async () => {
    const dir = await tempDir();
    const exe = join(dir, 'engine');
    await writeFile(exe, '#!/bin/sh\n', { mode: 0o755 });
    await writeFile(join(dir, 'data'), '', { mode: 0o644 });
    assert.equal(programProblem('sh', undefined, '/usr/bin:/bin'), undefined);
    assert.equal(programProblem('engine', undefined, dir), undefined);
    assert.equal(programProblem('./engine', dir, ''), undefined);
    assert.equal(programProblem(exe, undefined, ''), undefined);
    assert.match(programProblem('engine', undefined, '/usr/bin')!, /'engine' not found on PATH/);
    assert.match(programProblem('data', undefined, dir)!, /found on PATH but not executable/);
    assert.match(programProblem(join(dir, 'nope'), undefined, '')!, /not found/);
    assert.match(programProblem(dir, undefined, '')!, /is not executable/);
    assert.match(programProblem('sh', join(dir, 'gone'), '/usr/bin:/bin')!, /working directory '.*gone' not found/);
  });

  it('runs the program under the watch with its own arguments untouched', () => {
    const w = watchedCommand('python3', ['-c', 'print("a b")', '$HOME', "it's"], 2500, '/tmp/x.pid');
    assert.equal(w.program, '/bin/sh');
    assert.deepEqual(w.args.slice(2), ['sh', '25', '/tmp/x.pid', 'python3', '-c', 'print("a b")', '$HOME', "it's"]);
  });
});

describe('RegistrationKeeper status', () => {
  /** A scripted registry client: records every call, answers as told. */
  function fakeClient() {
    const calls: string[] = [];
    let heartbeatAnswer: 'ok' | 'not-found' | 'error' = 'ok';
    let gate: Promise<void> = Promise.resolve();
    const client = {
      baseUrl: 'http://registry.invalid',
      async register(reg: Registration) {
        await gate;
        calls.push(`register ${reg.name} ${reg.status}`);
      },
      async heartbeat(name: string, status?: string) {
        calls.push(`heartbeat ${name}${status === undefined ? '' : ` ${status}`}`);
        return heartbeatAnswer;
      },
      async deregister(name: string) {
        calls.push(`deregister ${name}`);
        return true;
      },
    };
    return {
      calls,
      client: client as unknown as RegistryClient,
      answer: (a: typeof heartbeatAnswer) => (heartbeatAnswer = a),
      hold: () => {
        let open!: () => void;
        gate = new Promise((r) => (open = r));
        return open;
      },
    };
  }
  const reg = (name: string): Registration => ({ name, host: 'h', hostname: 'h', port: 1, url: 'http://h:1', status: 'running', metadata: {} });
  const log = createLogger('test', 'silent');

  it('sends a status change at once, repeats it until acknowledged, and re-registers with it', async () => {
    const f = fakeClient();
    const keeper = new RegistrationKeeper(f.client, 60_000, log);
    await keeper.set(reg('a'));
    f.answer('error');
    await keeper.setStatus('a', 'not-ready');
    assert.equal(keeper.status('a'), 'not-ready');
    f.answer('ok');
    await (keeper as any).beatAll();
    await (keeper as any).beatAll();
    f.answer('not-found');
    await keeper.setStatus('a', 'running');
    await keeper.setStatus('a', 'running');
    assert.deepEqual(f.calls, ['register a running', 'heartbeat a not-ready', 'heartbeat a not-ready', 'heartbeat a', 'heartbeat a running', 'register a running']);
    await keeper.setStatus('unknown', 'not-ready');
    await keeper.stop();
  });

  it('keeps one record\'s calls in order: a removal never overtakes its registration', async () => {
    const f = fakeClient();
    const keeper = new RegistrationKeeper(f.client, 60_000, log);
    const open = f.hold();
    const registered = keeper.set(reg('b'));
    await new Promise((r) => setImmediate(r)); // the registration is on its way (held by the registry)
    const status = keeper.setStatus('b', 'not-ready');
    const removed = keeper.remove('b');
    open();
    await Promise.all([registered, status, removed]);
    assert.deepEqual(f.calls, ['register b running', 'deregister b'], 'the removal waits for the registration; the status beat finds no record');

    // a status change made before a registration's turn is registered as it is then
    const open2 = f.hold();
    const first = keeper.set(reg('c'));
    await new Promise((r) => setImmediate(r));
    const second = keeper.set(reg('c'));
    void keeper.setStatus('c', 'not-ready');
    open2();
    await Promise.all([first, second]);
    assert.deepEqual(f.calls.slice(2), ['register c running', 'register c not-ready']);
    await keeper.stop();
  });
});
