/**
 * The request log under logrotate's rename-then-SIGHUP: lines before the signal stay in the moved
 * file, lines after it go to a new file at the configured path, none lost or doubled; the same with
 * --workers (the primary passes the signal on to every worker).
 */
import assert from 'node:assert/strict';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { http, startMocks, startService, tempDir, waitFor, writeStaticServices } from './helpers/services.js';

const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
const ids = async (file: string): Promise<string[]> =>
  (await readFile(file, 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l).request_id as string);

describe('request log rotation', () => {
  for (const workers of [1, 2]) {
    it(`SIGHUP reopens the file after it was moved away (${workers === 1 ? 'one process' : `--workers ${workers}`})`, { timeout: 60_000 }, async () => {
      const [mock] = await startMocks([{ models: 'm' }]);
      const dir = await tempDir('infini-reqlog-');
      const file = join(dir, 'requests.log');
      const services = await writeStaticServices([{ name: 'mock-a', port: mock!.port, models: ['m'] }], dir);
      const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', services, '--request-log', file, '--workers', String(workers)]);
      try {
        // a worker still starting has no SIGHUP handler yet, so the primary passes the signal only to listening ones
        await waitFor(() => router.logs.filter((l) => l.msg === 'router listening').length === workers, 'every worker listening');
        const send = async (id: string) => assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: chat, headers: { 'x-request-id': id } })).status, 200);
        for (let i = 0; i < 5; i++) await send(`before-${i}`);
        // the lines are written within a second (the flush timer)
        await waitFor(async () => (await ids(file)).length === 5, 'the first lines written');
        await rename(file, `${file}.1`);
        // as logrotate's postrotate does: the router's pid only (with --workers, the primary's)
        process.kill(router.proc.pid!, 'SIGHUP');
        await router.waitForLog((l) => l.msg === 'request log reopened');
        // the primary passes the signal on: every worker reopens
        if (workers > 1) await waitFor(() => new Set(router.logs.filter((l) => l.msg === 'request log reopened').map((l) => l.pid)).size === workers, 'every worker reopened');
        for (let i = 0; i < 5; i++) await send(`after-${i}`);
        await waitFor(async () => (await ids(file)).length === 5, 'the later lines in the new file');
        assert.deepEqual((await ids(`${file}.1`)).sort(), [0, 1, 2, 3, 4].map((i) => `before-${i}`));
        assert.deepEqual((await ids(file)).sort(), [0, 1, 2, 3, 4].map((i) => `after-${i}`));
        assert.ok(router.alive, 'SIGHUP does not stop the router');
      } finally {
        await router.stop();
        await mock!.stop();
      }
    });
  }
});
