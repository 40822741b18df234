// A killed babysitter must not orphan its engine, and a babysitter must only ever call its own
// child ready (issue 12, fault 3). Real processes throughout: the babysitter alone is SIGKILLed
// (never its engine's group), and the "orphan" on the port is a process this test starts itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from './helpers/test.js';
import { allProcesses, procStat } from '../src/common/proc-stat.js';
import { createLogger } from '../src/common/log.js';
import { pidFilePath, stopPreviousGroup, writeGroupRecord } from '../src/babysitter/pid-file.js';
import { portInUse } from '../src/babysitter/port-owner.js';
import { groupAlive, stopGroup } from '../src/babysitter/process-group.js';
import { FAKE_BACKEND, freePortPair, http, pidAlive, startRegistry, startStubbornBackend, startService, tempDir, waitFor, type RunningService } from './helpers/services.js';

const info = async (b: RunningService) => (await http('GET', `${b.url}/info`)).body;
const pidFile = (port: number) => join(tmpdir(), `infini-babysitter-${process.getuid!()}-${port}.pid`);
const processes = () => allProcesses() ?? [];
const count = (s: RunningService, msg: string, extra: (l: any) => boolean = () => true) => s.logs.filter((l) => l.msg === msg && extra(l)).length;

/** Kills the babysitter process only (its engine's group is left to its own devices); returns when. */
async function killBabysitterOnly(s: RunningService): Promise<number> {
  const at = Date.now();
  process.kill(s.proc.pid!, 'SIGKILL');
  await s.exited;
  return at;
}

/** Waits until the registry record's last_heartbeat has advanced `beats` times, the record present throughout. */
async function watchHeartbeats(regUrl: string, name: string, beats: number): Promise<void> {
  const seen = new Set<number>();
  const off: string[] = [];
  await waitFor(async () => {
    const r = await http('GET', `${regUrl}/services/${name}`);
    if (r.status !== 200 || r.body.status !== 'running') off.push(`${r.status} ${r.body?.status}`);
    else seen.add(r.body.last_heartbeat);
    return seen.size > beats || off.length > 0;
  }, `${beats} heartbeats of ${name}`, 30_000);
  assert.deepEqual(off, [], `${name} stays registered and running`);
}

// processes this file starts directly (not through the CLI helpers), stopped by pid at the end
const strays = new Set<number>();
after(() => {
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/**
 * A process of the test's own answering like an engine on `port` (not ours): listening at once, or
 * (`late`) started now but listening only once sent SIGUSR2, like an engine still loading its model.
 */
async function startOutsider(port: number, late = false): Promise<number> {
  const proc = spawn(process.execPath, [FAKE_BACKEND, '--port', String(port)], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, LISTEN_ON_SIGUSR2: late ? '1' : '' } });
  strays.add(proc.pid!);
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes(late ? 'waiting' : 'listening') && resolve());
    proc.once('exit', (code) => reject(new Error(`outsider exited ${code}`)));
  });
  return proc.pid!;
}

const NEVER_LISTENS = `${process.execPath} -e setInterval(()=>{},1000)`;

describe('babysitter: a killed babysitter does not orphan its engine', () => {
  it('the engine exits within seconds; a new babysitter on the port is ready exactly once and stays so', async (t) => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const args = ['babysitter', '--port', String(port), '--name', 'orphan-a', '--service-type', 'mock', '--args', 'm1', '--host', '127.0.0.1', '--registry-url', reg.url, '--heartbeat-interval', '0.2', '--readiness-interval', '0.2', '--readiness-timeout', '1', '--restart-delay', '0.1'];
    const first = await startService(args);
    await waitFor(async () => (await info(first)).state === 'ready', 'first ready');
    const i = await info(first);
    assert.equal(i.group_watch, true);
    const engine = i.pid as number;
    assert.ok(existsSync(pidFile(port)), 'the pid file names the running group');
    // the group: the engine (the mock starts no children) and the watcher, which is not the engine's child
    const group = processes().filter((p) => p.pgrp === engine);
    assert.deepEqual(group.filter((p) => p.ppid === engine), [], 'the engine has no child it did not start');
    assert.equal(group.length, 2, 'engine and watcher');

    const killedAt = await killBabysitterOnly(first);
    await waitFor(() => !pidAlive(engine), 'the engine exits after its babysitter died', 10_000);
    t.diagnostic(`engine gone ${Date.now() - killedAt} ms after its babysitter was killed`);

    const second = await startService(args);
    await waitFor(async () => (await info(second)).state === 'ready', 'second ready');
    assert.equal(count(second, 'backend port already in use: not starting the backend'), 0, 'the port was free: the engine had gone');
    // many heartbeat and readiness intervals: one start, one registration, never a flap
    await watchHeartbeats(reg.url, 'orphan-a-server', 15);
    const j = await info(second);
    assert.equal(j.state, 'ready');
    assert.equal(j.restart_count, 0);
    assert.equal(count(second, 'backend ready'), 1);
    assert.equal(count(second, 'registered with registry', (l) => l.service === 'orphan-a-server'), 1);
    assert.equal(count(second, 'backend not ready'), 0);

    // a deliberate stop is not held up by the watcher
    assert.equal((await second.stop('SIGTERM')).code, 0);
    assert.ok(second.logs.some((l) => l.msg === 'backend stopped' && l.how === 'terminated'));
    assert.equal(pidAlive(j.pid), false);
    assert.ok(!existsSync(pidFile(port)), 'the pid file is removed with the group');
    await reg.stop();
  });

  it('stops an engine that ignores SIGTERM, and its workers, within the stop grace', async (t) => {
    const { sitter, tree, port } = await startStubbornBackend();
    assert.equal(tree.pid, (await info(sitter)).pid, 'the engine keeps the group leader\'s pid (exec)');
    const killedAt = await killBabysitterOnly(sitter);
    await waitFor(() => !pidAlive(tree.pid) && !pidAlive(tree.child), 'engine and worker gone', 10_000);
    t.diagnostic(`engine ignoring SIGTERM (grace 0.5 s) gone ${Date.now() - killedAt} ms after its babysitter was killed`);
    await waitFor(() => !existsSync(pidFile(port)), 'the watcher removed the pid file of its group');
  });

  it('a new babysitter stops the group a killed one left behind (pid file), then starts cleanly', async () => {
    const port = await freePortPair();
    const dir = await tempDir();
    const out = join(dir, 'tree.json');
    const args = (grace: string) => ['babysitter', '--port', String(port), '--command', `${process.execPath} ${FAKE_BACKEND}`, '--args', `--port ${port}`, '--env', `OUT_FILE=${out}`, '--env', 'SPAWN_CHILD=1', '--env', 'IGNORE_TERM=1', '--stop-grace', grace];
    // a long grace: the watcher of the killed babysitter is still waiting when the next one starts
    const first = await startService(args('120'));
    await waitFor(async () => (await info(first)).state === 'ready', 'first ready');
    const old = JSON.parse(await readFile(out, 'utf8'));
    await killBabysitterOnly(first);
    assert.ok(pidAlive(old.pid), 'the old engine ignores SIGTERM and is still running');

    const second = await startService(args('0.5'));
    const stopping = await second.waitForLog((l) => l.msg === 'stopping the backend group a previous babysitter left running');
    assert.equal(stopping.backend_pid, old.pid);
    await waitFor(async () => (await info(second)).state === 'ready', 'second ready', 15_000);
    assert.equal(pidAlive(old.pid), false, 'old engine gone');
    assert.equal(pidAlive(old.child), false, 'old worker gone');
    const fresh = JSON.parse(await readFile(out, 'utf8'));
    assert.notEqual(fresh.pid, old.pid);
    assert.equal((await info(second)).restart_count, 0);
    assert.equal(count(second, 'backend port already in use: not starting the backend'), 0);
    await second.stop();
  });

  it('a pid file naming a live babysitter\'s group is left alone', async () => {
    const port = await freePortPair();
    const args = ['babysitter', '--port', String(port), '--service-type', 'mock', '--args', 'm1', '--restart-delay', '0.1', '--max-restart-delay', '0.2'];
    const owner = await startService([...args, '--bind', '127.0.0.1']);
    await waitFor(async () => (await info(owner)).state === 'ready', 'owner ready');
    const engine = (await info(owner)).pid;
    // same backend port, the babysitter's own port elsewhere: only the pid file and port checks stand between them
    const intruder = await startService([...args, '--bind', '127.0.0.2']);
    await intruder.waitForLog((l) => l.msg === 'the backend group on this port belongs to a running babysitter; leaving it alone');
    await waitFor(() => count(intruder, 'backend port already in use: not starting the backend') >= 3, 'refused several times');
    assert.ok(pidAlive(engine));
    assert.equal((await info(owner)).state, 'ready');
    assert.equal((await info(owner)).restart_count, 0);
    await Promise.all([intruder.stop(), owner.stop()]);
  });
});

/**
 * A group leader in the state a SIGKILLed multi-threaded engine passes through (longer under CPU
 * load): its own thread has exited, so /proc calls it a zombie, while another thread still runs and
 * the process still holds its listening socket. Here the main thread exits by itself
 * (pthread_exit), so the state lasts until the group is signalled. Resolves once it is reached.
 */
async function startZombieLeaderHoldingPort(): Promise<{ pid: number; port: number }> {
  const script = [
    'import ctypes, socket, threading',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()',
    'print(s.getsockname()[1], flush=True)',
    'threading.Thread(target=threading.Event().wait).start()',
    'ctypes.CDLL(None).pthread_exit(None)',
  ].join('\n');
  const proc = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  strays.add(proc.pid!);
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    proc.once('exit', (code) => reject(new Error(`python3 exited ${code}`)));
  });
  await waitFor(() => procStat(proc.pid!)?.state === 'Z', 'the leader thread exited');
  return { pid: proc.pid!, port };
}

describe('babysitter: a group is gone only once its last thread is', () => {
  it('a zombie leader whose other threads still run is stopped, and the port is free after', async () => {
    const { pid, port } = await startZombieLeaderHoldingPort();
    assert.equal((await portInUse(port)).inUse, true, 'the process still listens');
    assert.equal(groupAlive(pid), true, 'a zombie leader with a running thread counts');
    assert.equal(await stopGroup(pid, 5000), 'terminated');
    assert.equal(groupAlive(pid), false);
    assert.deepEqual(await portInUse(port), { inUse: false }, 'the socket closed with the last thread');
    strays.delete(pid);
  });

  it('the pid file check stops such a group before the port is checked', async () => {
    const { pid, port } = await startZombieLeaderHoldingPort();
    const file = pidFilePath(port);
    const log = createLogger('test', 'silent');
    writeGroupRecord(file, pid, port, 'python3', log);
    assert.ok(existsSync(file));
    // the record names this process as the babysitter: a record of its own is stale
    await stopPreviousGroup(file, 5000, log);
    assert.equal(groupAlive(pid), false);
    assert.deepEqual(await portInUse(port), { inUse: false });
    assert.ok(!existsSync(file), 'the record is removed');
    strays.delete(pid);
  });
});

describe('babysitter: readiness is of its own child', () => {
  it('never becomes ready while another process holds the port, and starts once it is free', async () => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const outsider = await startOutsider(port);
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'squatted', '--service-type', 'mock', '--args', 'm1', '--host', '127.0.0.1', '--registry-url', reg.url, '--heartbeat-interval', '0.2', '--restart-delay', '0.1', '--max-restart-delay', '0.3']);
    await waitFor(() => count(sitter, 'backend port already in use: not starting the backend') >= 5, 'several refused starts');
    const i = await info(sitter);
    assert.equal(i.last_down_reason, `port ${port} in use by pid ${outsider} (node)`);
    assert.ok(i.state === 'backoff' || i.state === 'starting', i.state);
    assert.equal(count(sitter, 'backend ready'), 0);
    assert.equal(count(sitter, 'starting backend') - count(sitter, 'backend port already in use: not starting the backend'), 0, 'no engine was ever spawned');
    assert.equal((await http('GET', `${sitter.url}/health`)).status, 503);
    assert.equal((await http('GET', `${reg.url}/services/squatted-server`)).status, 404);
    const h = await http('GET', `${sitter.url}/health`);
    assert.equal(h.body.reason, `port ${port} in use by pid ${outsider} (node)`);

    process.kill(outsider, 'SIGKILL');
    strays.delete(outsider);
    await waitFor(async () => (await info(sitter)).state === 'ready', 'ready once the port is free');
    await waitFor(async () => (await http('GET', `${reg.url}/services/squatted-server`)).status === 200, 'registered');
    assert.equal(count(sitter, 'backend ready'), 1);
    await Promise.all([sitter.stop(), reg.stop()]);
  });

  it('an answer from a process older than the backend that binds after the launch is not readiness', async () => {
    const port = await freePortPair();
    // e.g. an orphaned engine still loading its model when this babysitter checked the port
    const outsider = await startOutsider(port, true);
    const sitter = await startService(['babysitter', '--port', String(port), '--command', NEVER_LISTENS, '--startup-timeout', '3', '--restart-delay', '0.1', '--stop-grace', '0.5']);
    await waitFor(async () => (await info(sitter)).pid, 'backend launched');
    process.kill(outsider, 'SIGUSR2');
    await sitter.waitForLog((l) => l.msg === 'the backend port is answered by a process outside the backend: not ready');
    const i = await info(sitter);
    assert.equal(i.state, 'starting');
    assert.equal(i.not_ready_reason, `port ${port} answered by pid ${outsider} (node), not by the backend`);
    // through the whole startup timeout (many probes), then refused starts: never ready
    await waitFor(() => count(sitter, 'backend port already in use: not starting the backend') >= 2, 'the restart refuses the taken port', 15_000);
    assert.equal((await info(sitter)).last_down_reason, `port ${port} in use by pid ${outsider} (node)`);
    assert.ok(sitter.logs.some((l) => l.msg === 'restarting backend after delay' && l.reason === 'startup timeout'));
    assert.equal(count(sitter, 'backend ready'), 0);
    process.kill(outsider, 'SIGKILL');
    strays.delete(outsider);
    await sitter.stop();
  });

  it('trusts a listener outside its group that started after the backend (docker-proxy style), and says so', async () => {
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--command', NEVER_LISTENS, '--stop-grace', '0.5']);
    await waitFor(async () => (await info(sitter)).pid, 'backend launched');
    const proxy = await startOutsider(port);
    const line = await sitter.waitForLog((l) => l.msg === 'the backend port is held by a process outside the backend group that started after it (e.g. docker-proxy): trusting it');
    assert.equal(line.holder_pid, proxy);
    await waitFor(async () => (await info(sitter)).state === 'ready', 'ready');
    process.kill(proxy, 'SIGKILL');
    strays.delete(proxy);
    await sitter.stop();
  });
});

describe('babysitter: spawn failures stay clear under the watch', () => {
  it('names a program that is missing or not executable, or a missing working directory', async () => {
    const dir = await tempDir();
    const cases: Array<[string[], RegExp]> = [
      [['--command', 'no-such-engine-xyz'], /program 'no-such-engine-xyz' not found on PATH/],
      [['--command', join(dir, 'missing')], /program '.*missing' not found/],
      [['--command', dir], /program '.*' is not executable/],
      [['--command', 'sh', '--work-dir', join(dir, 'gone')], /working directory '.*gone' not found/],
    ];
    for (const [args, pattern] of cases) {
      const port = await freePortPair();
      const sitter = await startService(['babysitter', '--port', String(port), ...args, '--restart-delay', '5']);
      const line = await sitter.waitForLog((l) => l.msg === 'backend failed to start');
      assert.match(String(line.err), pattern);
      const i = await info(sitter);
      assert.equal(i.last_down_reason, 'spawn failed');
      assert.ok(i.recent_logs.some((l: string) => pattern.test(l)), 'the reason is in the recent output');
      await sitter.stop();
    }
  });
});
