/**
 * The parent-death watch that `up` gives its children (src/common/parent-watch.ts), in small
 * child processes: it stops the service gracefully when the pipe's other end closes, never keeps
 * a process alive by itself, does nothing without its variable, and never cuts a stop short.
 */
import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { startParentWatchFromEnv } from '../src/common/parent-watch.js';
import { waitFor } from './helpers/services.js';
import { distModule as dist, runModule, type ModuleChild as Child } from './helpers/module-child.js';

/** Runs an ES module snippet with a pipe on fd 3, and INFINI_PARENT_FD set unless `env` says otherwise. */
function run(code: string, env: Record<string, string | undefined> = { INFINI_PARENT_FD: '3' }): Child {
  return runModule(code, { env: { INFINI_PARENT_FD: undefined, ...env }, pipeFd3: true });
}

/** Closes our end of the watch pipe, as the parent's death would. */
const closeWatchPipe = (c: Child) => (c.proc.stdio[3] as unknown as { destroy: () => void }).destroy();

describe('parent-death watch', { timeout: 60_000 }, () => {
  it('does not keep a process alive by itself, and hides its variable from the processes it starts', async () => {
    const c = run(`import { startParentWatchFromEnv } from ${dist('parent-watch.js')};
      startParentWatchFromEnv();
      console.log(process.env.INFINI_PARENT_FD ?? 'unset');`);
    // our end of the pipe stays open: the child exits on its own all the same
    assert.deepEqual(await c.exited, { code: 0, signal: null });
    assert.equal(c.out().trim(), 'unset');
    assert.equal(c.err(), '');
  });

  it('begins the graceful stop when the parent end closes', async () => {
    const c = run(`import { startParentWatchFromEnv } from ${dist('parent-watch.js')};
      import { onShutdownSignal } from ${dist('shutdown.js')};
      import { createLogger } from ${dist('log.js')};
      startParentWatchFromEnv();
      onShutdownSignal(createLogger('t'), async () => console.log('graceful stop'));
      setInterval(() => undefined, 1000);
      console.log('ready');`);
    await waitFor(() => c.out().includes('ready'), 'child ready');
    closeWatchPipe(c);
    assert.deepEqual(await c.exited, { code: 0, signal: null });
    assert.match(c.out(), /graceful stop/);
    assert.match(c.err(), /"reason":"parent process exited","msg":"shutting down"/);
  });

  it('sends SIGTERM when no graceful stop is registered yet', async () => {
    const c = run(`import { startParentWatchFromEnv } from ${dist('parent-watch.js')};
      startParentWatchFromEnv();
      setInterval(() => undefined, 1000);
      console.log('ready');`);
    await waitFor(() => c.out().includes('ready'), 'child ready');
    closeWatchPipe(c);
    assert.deepEqual(await c.exited, { code: null, signal: 'SIGTERM' });
  });

  it('does not cut short a stop already running (no "second signal" exit)', async () => {
    // the stop begun by SIGTERM asks for a shutdown again, as the watch does when the parent dies meanwhile
    const c = run(`import { onShutdownSignal, requestShutdown } from ${dist('shutdown.js')};
      import { createLogger } from ${dist('log.js')};
      onShutdownSignal(createLogger('t'), async () => {
        console.log('again: ' + requestShutdown('parent process exited'));
        await new Promise((r) => setImmediate(r));
        console.log('stop finished');
      });
      setInterval(() => undefined, 1000);
      process.kill(process.pid, 'SIGTERM');`);
    assert.deepEqual(await c.exited, { code: 0, signal: null });
    assert.equal(c.out(), 'again: true\nstop finished\n');
    assert.equal(c.err().match(/shutting down/g)?.length, 1);
  });

  it('ignores a variable that names no pipe, with one line saying so', async () => {
    for (const [value, message] of [['abc', /ignoring INFINI_PARENT_FD='abc': expected a descriptor number/], ['250', /ignoring INFINI_PARENT_FD=250: not an open socket/]] as const) {
      const c = run(`import { startParentWatchFromEnv } from ${dist('parent-watch.js')}; startParentWatchFromEnv();`, { INFINI_PARENT_FD: value });
      assert.deepEqual(await c.exited, { code: 0, signal: null });
      assert.match(c.err(), message);
    }
  });

  it('does nothing without its variable', () => {
    const env: NodeJS.ProcessEnv = { PATH: '/bin' };
    startParentWatchFromEnv(env);
    assert.deepEqual(env, { PATH: '/bin' });
  });
});
