/**
 * The stop rule every process shares (src/common/shutdown.ts), in small child processes: the first
 * SIGINT or SIGTERM begins the graceful stop, a second one stops at once; a stop requested for
 * another reason (a parent's death) runs the same graceful stop and never counts as a signal.
 * The snippets send their own signals, each only after the previous one was handled (a listener
 * added after the rule's own runs after it), so nothing depends on timing.
 */
import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { distModule as dist, runModule } from './helpers/module-child.js';

/** A snippet with onStopSignals whose actions print what they were called with. */
const withRule = (body: string) => `import { onStopSignals, requestShutdown } from ${dist('shutdown.js')};
  const print = (line) => process.stdout.write(line + '\\n');
  const stop = onStopSignals({
    graceful: (reason) => { print('graceful ' + reason); globalThis.onGraceful?.(); },
    immediate: (signal) => { print('immediate ' + signal); process.exit(130); },
  });
  setInterval(() => undefined, 1000);
  ${body}`;

describe('stop rule: onStopSignals', { timeout: 60_000 }, () => {
  const cases: Array<{ name: string; body: string; out: string; code: number; why: string }> = [
    {
      name: 'first signal begins the graceful stop, a second one (of the other kind) stops at once',
      body: `globalThis.onGraceful = () => process.kill(process.pid, 'SIGINT');
        process.kill(process.pid, 'SIGTERM');`,
      out: 'graceful SIGTERM\nimmediate SIGINT\n',
      code: 130,
      why: 'an operator can always get their terminal back; SIGINT and SIGTERM count together',
    },
    {
      name: 'a requested stop is not a signal: the first signal after it does nothing, the second stops at once',
      body: `let seen = 0;
        process.on('SIGTERM', () => { print('signal ' + ++seen); if (seen === 1) process.kill(process.pid, 'SIGTERM'); });
        globalThis.onGraceful = () => process.kill(process.pid, 'SIGTERM');
        print('requested: ' + requestShutdown('parent process exited'));`,
      out: 'graceful parent process exited\nrequested: true\nsignal 1\nimmediate SIGTERM\n',
      code: 130,
      why: "a parent's death must neither cut a stop short nor turn the operator's first Ctrl-C into a kill",
    },
    {
      name: 'requests while stopping do nothing; the graceful stop runs once',
      body: `globalThis.onGraceful = () => {
          stop('primary');
          print('again: ' + requestShutdown('parent process exited'));
        };
        process.kill(process.pid, 'SIGTERM');
        process.on('SIGTERM', () => setImmediate(() => process.exit(0)));`,
      out: 'graceful SIGTERM\nagain: true\n',
      code: 0,
      why: 'the parent watch and a primary may both ask while a signal has begun the stop',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const child = runModule(withRule(c.body));
      assert.deepEqual(await child.exited, { code: c.code, signal: null }, `${c.why}; stderr: ${child.err()}`);
      assert.equal(child.out(), c.out, c.why);
    });
  }

  it('requestShutdown says false while no stop is registered', async () => {
    const child = runModule(`import { requestShutdown } from ${dist('shutdown.js')}; console.log(requestShutdown('parent process exited'));`);
    assert.deepEqual(await child.exited, { code: 0, signal: null });
    assert.equal(child.out(), 'false\n');
  });
});

describe("stop rule: onShutdownSignal (a service's exit codes and log lines)", { timeout: 60_000 }, () => {
  /** A service whose stop does `stopBody`, sent SIGTERM once. */
  const service = (stopBody: string) => `import { onShutdownSignal } from ${dist('shutdown.js')};
    import { createLogger } from ${dist('log.js')};
    onShutdownSignal(createLogger('t'), async (reason) => { ${stopBody} });
    setInterval(() => undefined, 1000);
    process.kill(process.pid, 'SIGTERM');`;
  const cases: Array<{ name: string; stop: string; code: number; log: RegExp[] }> = [
    { name: 'a stop that finishes exits 0', stop: '', code: 0, log: [/"reason":"SIGTERM","msg":"shutting down"/] },
    { name: 'a stop that fails exits 1 and logs the error', stop: "throw new Error('drain failed');", code: 1, log: [/"level":"error".*"message":"drain failed".*"msg":"error during shutdown"/] },
    {
      name: 'a second signal during the stop exits 130 at once',
      stop: "process.kill(process.pid, 'SIGINT'); await new Promise(() => undefined);",
      code: 130,
      log: [/"msg":"shutting down"/, /"signal":"SIGINT","msg":"second signal: exiting now"/],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const child = runModule(service(c.stop));
      assert.deepEqual(await child.exited, { code: c.code, signal: null }, child.err());
      for (const re of c.log) assert.match(child.err(), re);
    });
  }
});
