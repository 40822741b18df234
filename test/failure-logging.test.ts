/**
 * Failures that used to vanish: a periodic task's rejection, a babysitter endpoint that throws, a
 * mock /metrics that cannot render. Each is logged with its error (a JSON line with `err`), the
 * client gets a 500, and the process goes on; a client that went away is not logged as a failure.
 */
import assert from 'node:assert/strict';
import type { AddressInfo, Server } from 'node:net';
import { pino } from 'pino';
import { describe, it } from './helpers/test.js';
import { http, waitFor } from './helpers/services.js';
import { PeriodicTask } from '../src/common/periodic.js';
import type { Logger } from '../src/common/log.js';
import { BabysitterServer } from '../src/babysitter/server.js';
import { BabysitterMetrics } from '../src/babysitter/metrics.js';
import type { BabysitterConfig } from '../src/babysitter/config.js';
import type { Supervisor } from '../src/babysitter/supervisor.js';
import { MockServer } from '../src/mock/server.js';
import type { MockOptions } from '../src/mock/options.js';
import { ENGINE_PROFILES } from '../src/mock/engine-profiles.js';

interface Line {
  level: string;
  msg: string;
  task?: string;
  path?: string;
  err?: { message: string; stack?: string };
}

/** A logger that keeps its JSON lines in memory. */
function recordingLogger(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const log = pino({ level: 'debug', formatters: { level: (label) => ({ level: label }) } }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { log, lines };
}

/** Listens on an ephemeral loopback port; returns the base URL. */
async function listenLocal(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The one line logged as `msg`: at error level, with the error's message. */
function assertLoggedError(lines: Line[], msg: string, errMessage: string): Line {
  const line = lines.find((l) => l.msg === msg);
  assert.equal(line?.level, 'error', `an error line '${msg}'`);
  assert.equal(line.err?.message, errMessage);
  return line;
}

describe('failures are logged, not swallowed', () => {
  it('a periodic task that rejects or throws is logged with its error and its name, and runs again', async () => {
    const { log, lines } = recordingLogger();
    let runs = 0;
    const task = new PeriodicTask(
      'flaky round',
      () => {
        runs++;
        if (runs === 1) return Promise.reject(new Error('store unavailable'));
        if (runs === 2) throw new Error('thrown before any await');
        return Promise.resolve();
      },
      10,
      log,
    );
    task.start({ immediately: true });
    await waitFor(() => runs >= 3, 'a third round');
    await task.stop();
    const failures = lines.filter((l) => l.msg === 'periodic task failed; it runs again at the next interval');
    assert.deepEqual(
      failures.map((l) => [l.level, l.task, l.err?.message]),
      [
        ['error', 'flaky round', 'store unavailable'],
        ['error', 'flaky round', 'thrown before any await'],
      ],
    );
    assert.ok(failures[0]!.err!.stack, 'the stack comes along');
  });

  it('a babysitter endpoint that throws answers 500 and logs the error', async () => {
    const { log, lines } = recordingLogger();
    const supervisor = {
      log,
      get state(): string {
        throw new Error('state unreadable');
      },
    } as unknown as Supervisor;
    const cfg = { name: 'sitter', port: 1, host: '127.0.0.1', backend: { type: 'mock' }, metadata: {} } as unknown as BabysitterConfig;
    const api = new BabysitterServer(cfg, { program: 'x', args: [] }, supervisor, new BabysitterMetrics('sitter', supervisor));
    const url = await listenLocal(api.server);
    try {
      assert.equal((await http('GET', `${url}/health`)).status, 500);
      assert.equal(assertLoggedError(lines, 'babysitter endpoint failed', 'state unreadable').path, '/health');
      assert.equal((await http('GET', `${url}/metrics`)).status, 500);
    } finally {
      api.server.closeAllConnections();
      api.server.close();
    }
  });

  it("a mock /metrics that cannot render answers 500 and logs the error (an unhandled rejection would end the process)", async () => {
    const { log, lines } = recordingLogger();
    const opts: MockOptions = {
      name: 'm',
      models: ['m'],
      seed: 0,
      outputTokens: 4,
      embeddingDims: 4,
      engine: { ...ENGINE_PROFILES.fast, maxRunning: 4, cacheBlocks: 0 },
      faults: { errorRate: 0, errorStatus: 500, hangRate: 0 },
    };
    const mock = new MockServer(opts, log);
    mock.metrics.render = () => Promise.reject(new Error('registry broken'));
    const url = await listenLocal(mock.server);
    try {
      assert.equal((await http('GET', `${url}/metrics`)).status, 500);
      assertLoggedError(lines, 'metrics could not be rendered', 'registry broken');
      assert.equal((await http('GET', `${url}/health`)).status, 200, 'still serving');
    } finally {
      await mock.close();
    }
  });
});
