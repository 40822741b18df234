import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { http, SseReader, startService, tempDir, waitFor, type RunningService } from './helpers/services.js';
import { createLogger } from '../src/common/log.js';
import { StateFile } from '../src/registry/state-file.js';

function service(name: string, extra: Record<string, unknown> = {}) {
  return { name, host: '127.0.0.1', port: 9000, hostname: '127.0.0.1', url: 'http://127.0.0.1:9000', status: 'running', ...extra };
}

// no background probe: its health_status write would race the tests' own control of the state files
const registryArgs = (stateFile: string) => ['registry', '--port', '0', '--host', '127.0.0.1', '--state-file', stateFile, '--health-interval', '3600'];
/** Names in the state on disk (snapshot plus journal), read as the registry reads it, writing nothing. */
const savedNames = async (stateFile: string) => (await new StateFile(stateFile, createLogger('test', 'silent')).read(Date.now())).services.map((s) => s.name).sort();
const names = async (reg: RunningService) => ((await http('GET', `${reg.url}/services`)).body.services as any[]).map((s) => s.name).sort();

describe('registry durability', () => {
  it('every acknowledged change survives kill -9 right after the answer', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'state.json');
    let reg = await startService(registryArgs(stateFile));
    const restart = async () => {
      await reg.stop('SIGKILL');
      reg = await startService(registryArgs(stateFile));
    };
    try {
      assert.equal((await http('POST', `${reg.url}/services`, { body: service('solo') })).status, 201);
      await restart();
      assert.equal((await http('GET', `${reg.url}/services/solo`)).status, 200, 'registration survives');

      // A burst of concurrent registrations shares writes; every 201 must be on disk.
      const burst = Array.from({ length: 40 }, (_, i) => `burst-${String(i).padStart(2, '0')}`);
      const answers = await Promise.all(burst.map((n) => http('POST', `${reg.url}/services`, { body: service(n, { metadata: { i: n } }) })));
      assert.ok(answers.every((a) => a.status === 201));
      await restart();
      assert.deepEqual(await names(reg), [...burst, 'solo'].sort());

      assert.equal((await http('PUT', `${reg.url}/services/solo`, { body: { port: 9123, metadata: { v: 2 } } })).status, 200);
      await restart();
      const updated = await http('GET', `${reg.url}/services/solo`);
      assert.equal(updated.body.port, 9123, 'update survives');
      assert.deepEqual(updated.body.metadata, { v: 2 });

      assert.equal((await http('POST', `${reg.url}/services/solo/heartbeat`, { body: { status: 'draining' } })).status, 200);
      await restart();
      assert.equal((await http('GET', `${reg.url}/services/solo`)).body.status, 'draining', 'a status set by heartbeat survives');

      assert.equal((await http('DELETE', `${reg.url}/services/solo`)).status, 200);
      await restart();
      assert.equal((await http('GET', `${reg.url}/services/solo`)).status, 404, 'deregistration survives');
    } finally {
      await reg.stop();
    }
  });

  it('removes a half-written temp file at start and loads the previous state', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'state.json');
    const first = await startService(registryArgs(stateFile));
    await http('POST', `${first.url}/services`, { body: service('kept') });
    await first.stop('SIGKILL');
    const leftover = `${stateFile}.4242.tmp`;
    await writeFile(leftover, '{"version":1,"index":9,"services":[{"name":"half');
    // Files of other state files, or not temp files of ours, are left alone.
    await writeFile(join(dir, 'state.json.bak'), 'x');
    await writeFile(join(dir, 'other.json.4242.tmp'), 'x');
    const second = await startService(registryArgs(stateFile));
    try {
      assert.deepEqual(await names(second), ['kept']);
      assert.deepEqual((await readdir(dir)).sort(), ['other.json.4242.tmp', 'state.json', 'state.json.bak']);
      const line = second.logs.find((l) => l.msg === 'removed temporary state files left by an interrupted write');
      assert.deepEqual(line?.files, ['state.json.4242.tmp']);
    } finally {
      await second.stop();
    }
  });

  it('a kill in the middle of a write leaves the previous state loadable and every acknowledged change', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'state.json');
    // Large records make each write take long enough to be caught in the middle.
    const bulk = { blob: 'z'.repeat(200 * 1024) };
    for (let attempt = 0; ; attempt++) {
      assert.ok(attempt < 20, 'never caught a write in the middle');
      const reg = await startService(registryArgs(stateFile));
      const acked: string[] = [];
      let stop = false;
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          const name = `w${attempt}-${i}`;
          const r = await http('POST', `${reg.url}/services`, { body: service(name, { metadata: bulk }) }).catch(() => undefined);
          if (r?.status === 201) acked.push(name);
        }
      })();
      const tmp = `${stateFile}.${reg.proc.pid}.tmp`;
      const seen = await waitFor(async () => (await readdir(dir)).includes(`state.json.${reg.proc.pid}.tmp`), 'a temp file', 10_000, 1).catch(() => false);
      // Freeze the registry, then check it is still mid-write, then kill it.
      reg.signal('SIGSTOP');
      const caught = seen && (await readdir(dir)).includes(`state.json.${reg.proc.pid}.tmp`);
      const ackedAtKill = [...acked];
      await reg.stop('SIGKILL');
      stop = true;
      await writer;
      const saved = new Set(await savedNames(stateFile));
      for (const n of ackedAtKill) assert.ok(saved.has(n), `acknowledged ${n} is in the state file`);
      if (!caught) continue;
      await readFile(tmp); // the interrupted write's file is there
      const next = await startService(registryArgs(stateFile));
      try {
        assert.ok(!(await readdir(dir)).some((f) => f.endsWith('.tmp')), 'temp file removed at start');
        const listed = new Set(await names(next));
        for (const n of ackedAtKill) assert.ok(listed.has(n), `acknowledged ${n} restored`);
      } finally {
        await next.stop();
      }
      break;
    }
  });

  it('answers 503 to a change it cannot save, applies nothing, and recovers when the disk does', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'state.json');
    const first = await startService(registryArgs(stateFile));
    assert.equal((await http('POST', `${first.url}/services`, { body: service('before') })).status, 201);
    // A clean stop folds the journal into the snapshot: the next run creates its journal afresh.
    await first.stop('SIGTERM');
    const reg = await startService(registryArgs(stateFile));
    try {
      const feed = await SseReader.open(`${reg.url}/events`);
      // A directory where the journal must go makes every write fail (EISDIR), even as root.
      const blocker = `${stateFile}.journal`;
      await mkdir(blocker);
      const refused = await http('POST', `${reg.url}/services`, { body: service('during') });
      assert.equal(refused.status, 503);
      assert.match(refused.body.error, /could not save its state \(EISDIR\); the change was not applied/);
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.equal((await http('GET', `${reg.url}/services/during`)).status, 404, 'a refused registration is not visible');
      assert.equal((await http('DELETE', `${reg.url}/services/before`)).status, 503);
      assert.equal((await http('PUT', `${reg.url}/services/before`, { body: { port: 9999 } })).status, 503);
      const still = await http('GET', `${reg.url}/services/before`);
      assert.equal(still.status, 200, 'a refused deregistration keeps the record');
      assert.equal(still.body.port, 9000, 'a refused update changes nothing');
      assert.equal((await http('POST', `${reg.url}/services/before/heartbeat`)).status, 200, 'plain heartbeats need no write');
      assert.ok(reg.logs.some((l) => l.level === 'error' && l.msg?.includes('failed to save registry state')));

      await rmdir(blocker);
      assert.equal((await http('POST', `${reg.url}/services`, { body: service('after') })).status, 201);
      const event = await feed.next((e) => e.type === 'put' || e.type === 'delete');
      assert.equal(event.service.name, 'after', 'the feed never saw a refused change');
      feed.close();
      assert.deepEqual(await savedNames(stateFile), ['after', 'before']);
    } finally {
      await reg.stop();
    }
  });
});
