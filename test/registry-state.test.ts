import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, it } from './helpers/test.js';
import { tempDir } from './helpers/services.js';
import { ChangeFeed, sseFrame } from '../src/registry/change-feed.js';
import { EmbeddedStore } from '../src/registry/embedded-store.js';
import { HeartbeatOrder } from '../src/registry/heartbeat-order.js';
import { ListingCache } from '../src/registry/listing-cache.js';
import { newRecord, toView, type Registration, type ServiceRecord } from '../src/registry/record.js';
import { StateFile } from '../src/registry/state-file.js';

/** A logger that keeps its lines. */
function recordingLog() {
  const lines: any[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

const reg = (name: string, extra: Partial<Registration> = {}): Registration => ({
  name,
  host: '127.0.0.1',
  port: 9000,
  hostname: '127.0.0.1',
  url: 'http://127.0.0.1:9000',
  status: 'running',
  metadata: { type: 'openai-api', models: [`m-${name}`] },
  ...extra,
});

async function stateFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** The names the state on disk holds, read as the registry reads it, writing nothing. */
async function savedNames(path: string): Promise<string[]> {
  return (await new StateFile(path, recordingLog().log).read(0)).services.map((s) => s.name).sort();
}

describe('state file: journal and compaction', () => {
  it('a burst of registrations costs a few writes and bytes within a few times the final state, and all of it is on disk', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.json');
    const file = new StateFile(path, recordingLog().log, 16 * 1024);
    const store = new EmbeddedStore({ heartbeatTimeoutMs: 60_000, maxHoldMs: 60_000, stateFile: file });
    await store.open();
    const names = Array.from({ length: 3000 }, (_, i) => `svc-${String(i).padStart(5, '0')}`);
    // Waves of concurrent registrations: each wave shares one group commit.
    for (let i = 0; i < names.length; i += 300) await Promise.all(names.slice(i, i + 300).map((n) => store.put(reg(n))));
    // Probe results for all: only the changed field is journalled.
    const before = file.appendedBytes;
    await Promise.all(names.map((n) => store.update(n, { health_status: 'healthy' }, { heartbeat: false })));
    const probeBytes = file.appendedBytes - before;
    await (store as any).compacting;
    const { writes, bytes_written, compactions } = file.counters;
    assert.deepEqual(await savedNames(path), names, 'every acknowledged registration is on disk (snapshot + journal)');
    await store.close();
    const finalSize = (await stat(path)).size;
    assert.deepEqual(await stateFiles(dir), ['state.json'], 'a clean stop leaves one snapshot');
    assert.ok(writes <= 2 * (names.length / 300) + 2 + compactions, `${writes} writes`);
    assert.ok(compactions >= 1, 'the journal was compacted during the burst');
    assert.ok(bytes_written <= 5 * finalSize, `${bytes_written} bytes written for a final state of ${finalSize}`);
    assert.ok(probeBytes < names.length * 80, `${probeBytes} bytes for ${names.length} health_status changes`);
    const saved = JSON.parse(await readFile(path, 'utf8'));
    assert.equal(saved.services.length, names.length);
    assert.ok(saved.services.every((s: any) => s.health_status === 'healthy'));
  });

  it('sequential changes append one line each: bytes follow the change rate, not the state size', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.json');
    const file = new StateFile(path, recordingLog().log);
    const store = new EmbeddedStore({ heartbeatTimeoutMs: 60_000, maxHoldMs: 60_000, stateFile: file });
    await store.open();
    await Promise.all(Array.from({ length: 2000 }, (_, i) => store.put(reg(`s${i}`))));
    const before = { ...file.counters };
    for (let i = 0; i < 50; i++) await store.update(`s${i}`, { status: 'draining' }, { heartbeat: true });
    for (let i = 0; i < 200; i++) await store.touch(`s${i}`);
    assert.equal(file.counters.writes - before.writes, 50, 'one write per change; heartbeats write nothing');
    assert.ok(file.counters.bytes_written - before.bytes_written < 50 * 100);
    await store.close();
  });

  it('loads a state file of the old format and rewrites it as a snapshot after replaying a journal', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.json');
    const old = newRecord(reg('old-a'), 1_700_000_000_000);
    const { lastHeartbeatMs, heardAtMs: _, ...rest } = old;
    await writeFile(path, JSON.stringify({ version: 1, index: 3, saved_at: 'x', services: [{ ...rest, last_heartbeat: lastHeartbeatMs / 1000 }] }, null, 1));
    const store = new EmbeddedStore({ heartbeatTimeoutMs: 60_000, maxHoldMs: 60_000, stateFile: new StateFile(path, recordingLog().log) });
    assert.equal(await store.open(), 1);
    await store.put(reg('new-b'));
    await store.update('old-a', { port: 9100 }, { heartbeat: true });
    assert.deepEqual(await stateFiles(dir), ['state.json', 'state.json.journal']);
    // A crash now: the next start replays the journal over the old snapshot, then compacts.
    const again = new EmbeddedStore({ heartbeatTimeoutMs: 60_000, maxHoldMs: 60_000, stateFile: new StateFile(path, recordingLog().log) });
    assert.equal(await again.open(), 2);
    assert.equal((await again.get('old-a'))?.port, 9100);
    assert.equal((await again.list()).index, 5, 'the index continues');
    assert.deepEqual(await stateFiles(dir), ['state.json']);
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')).services.map((s: any) => s.name).sort(), ['new-b', 'old-a']);
    await again.close();
    await store.close();
  });

  it('drops a torn last line with a warning, and refuses a damaged line in the middle', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.json');
    const rec = (name: string) => JSON.stringify({ ...reg(name), timestamp: '2026-01-01T00:00:00+00:00', health_status: 'unknown' });
    const good = `{"index":1,"put":[${rec('a')}]}\n{"index":2,"put":[${rec('b')}],"set":[{"name":"a","port":9001}]}\n`;
    await writeFile(`${path}.journal`, `${good}{"index":3,"put":[${rec('c').slice(0, 40)}`);
    const { log, lines } = recordingLog();
    const state = await new StateFile(path, log).read(0);
    assert.deepEqual(state.services.map((s) => s.name).sort(), ['a', 'b']);
    assert.equal(state.services.find((s) => s.name === 'a')?.port, 9001);
    assert.equal(state.index, 2);
    assert.ok(lines.some((l) => l.level === 40 && /incomplete last line/.test(l.msg)));

    await writeFile(`${path}.journal`, `{"index":1,"put":[${rec('a')}]}\n{"index":2,"put":[ oops\n{"index":3,"delete":["a"]}\n`);
    await assert.rejects(new StateFile(path, log).read(0), /state journal .*state\.json\.journal: line 2 is not a journal entry/);
  });

  it('starts on a journal it cannot compact, and appends after its last complete line', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.json');
    const rec = (name: string) => JSON.stringify({ ...reg(name), timestamp: 't', health_status: 'unknown' });
    await writeFile(`${path}.journal`, `{"index":1,"put":[${rec('a')}]}\n{"index":2,"put":[${rec('b').slice(0, 30)}`);
    // A directory where the snapshot's temporary file goes makes the compaction fail.
    await mkdir(`${path}.${process.pid}.tmp`);
    const { log, lines } = recordingLog();
    const file = new StateFile(path, log);
    assert.deepEqual((await file.load(0)).services.map((s) => s.name), ['a']);
    assert.ok(lines.some((l) => /could not compact the state journal at start/.test(l.msg)));
    await file.append({ index: 3, put: [JSON.parse(rec('c'))] });
    await file.close();
    const state = await new StateFile(path, recordingLog().log).read(0);
    assert.deepEqual(state.services.map((s) => s.name).sort(), ['a', 'c'], 'the torn line was cut before the append');
    assert.equal(state.index, 3);
  });

  it('loads the same state whichever step of a compaction a crash interrupted', async () => {
    const dir = await tempDir();
    const path = join(dir, 'state.json');
    const rec = (name: string, port = 9000) => JSON.stringify({ ...reg(name), port, timestamp: 't', health_status: 'unknown' });
    const snapshot = (index: number, names: string[]) => `{"version":1,"index":${index},"services":[${names.map((n) => rec(n)).join(',')}]}`;
    // Lines 1-4 were rotated to .journal.4; lines 5-6 went to the new journal.
    const rotated = `{"index":1,"put":[${rec('a')}]}\n{"index":2,"put":[${rec('b')}]}\n{"index":4,"delete":["a"],"put":[${rec('c')}]}\n`;
    const active = `{"index":5,"set":[{"name":"b","port":9005}]}\n{"index":6,"put":[${rec('d')}]}\n`;
    const expect = async (label: string) => {
      const state = await new StateFile(path, recordingLog().log).read(0);
      assert.deepEqual(state.services.map((s) => `${s.name}:${s.port}`).sort(), ['b:9005', 'c:9000', 'd:9000'], label);
      assert.equal(state.index, 6, label);
    };
    // Rotated, the new snapshot not yet renamed into place (the old one is from index 1).
    await writeFile(path, snapshot(1, ['a']));
    await writeFile(`${path}.journal.4`, rotated);
    await writeFile(`${path}.journal`, active);
    await expect('before the snapshot rename');
    // The new snapshot (index 4) is in place; the rotated journal not yet removed.
    await writeFile(path, snapshot(4, ['b', 'c']));
    await expect('before the rotated journal was removed');
  });
});

describe('heartbeat order', () => {
  it('answers silence and expiry like a scan of every record, over random heartbeats and changes', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const timeout = 50;
    const order = new HeartbeatOrder(timeout);
    const live = new Map<string, ServiceRecord>();
    let now = 0;
    for (let step = 0; step < 3000; step++) {
      now += rand(5);
      const name = `r${rand(40)}`;
      const op = rand(10);
      if (op < 5) {
        const rec = live.get(name) ?? newRecord(reg(name), 0, now);
        rec.heardAtMs = now;
        live.set(name, rec);
        order.heard(rec);
      } else if (op < 7 && live.has(name)) {
        const rec = { ...live.get(name)!, port: rand(1000) + 1 };
        live.set(name, rec);
        order.replace(rec);
      } else if (op < 8) {
        live.delete(name);
        order.remove(name);
      } else {
        const moved: string[] = [];
        order.expire(now, (r) => moved.push(r.name));
        for (const n of moved) assert.ok(now - live.get(n)!.heardAtMs >= timeout);
      }
      const all = [...live.values()];
      assert.equal(order.total, live.size);
      for (const t of [now, now + 1, now + 20]) assert.equal(order.silentAt(t), all.filter((r) => t - r.heardAtMs >= timeout).length, `silentAt step ${step}`);
      const stale = [...order.silentLongerThan(now, 30)].map((r) => r.name).sort();
      assert.deepEqual(stale, all.filter((r) => now - r.heardAtMs > 30).map((r) => r.name).sort());
      for (const r of order.silentLongerThan(now, 0)) assert.equal(r, live.get(r.name), 'holds the current object');
    }
  });
});

describe('listing cache', () => {
  it('serves the same JSON as serialising every view, and a new body after any change', async () => {
    const store = new EmbeddedStore({ heartbeatTimeoutMs: 60_000, maxHoldMs: 60_000 });
    await store.open();
    let wall = 1_700_000_000_000;
    let mono = 0;
    const cache = new ListingCache(store, () => wall, () => mono);
    const expected = async (status: string | null, healthy: boolean | undefined) => {
      const { services, index, epoch } = await store.list();
      const views = services
        .map((s) => store.view(s))
        .filter((v) => (status === null || v.status === status) && (healthy === undefined || v.is_healthy === healthy))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return JSON.stringify({ services: views, total: views.length, timestamp: new Date(wall).toISOString().slice(0, 19) + '+00:00', index, epoch });
    };
    const check = async (label: string) => {
      for (const [status, healthy] of [[null, undefined], ['running', undefined], [null, true], ['draining', false], ['nope', undefined]] as const) {
        assert.equal(Buffer.concat((await cache.body(status, healthy)).chunks).toString(), await expected(status, healthy), `${label}: status=${status} healthy=${healthy}`);
      }
    };
    await check('empty');
    await Promise.all(['zeta', 'alpha', 'Beta', 'éclair', 'm-1', 'm-10', 'm-2'].map((n, i) => store.put(reg(n, i % 2 ? { weight: i } : { metadata: { note: 'ünïcode "quoted" \u2028', i } }))));
    await check('registered');
    await store.update('alpha', { status: 'draining' }, { heartbeat: true });
    await store.delete('m-10');
    await store.put(reg('aardvark'));
    await check('changed');
    // A heartbeat alone moves no index: the cached body is served until it is a second old.
    const cached = await cache.body(null, undefined);
    wall += 5_000;
    await store.touch('zeta');
    assert.equal(await cache.body(null, undefined), cached);
    mono += 1_000;
    await check('a second later');
    // Larger than one serialisation step (2000 records).
    await Promise.all(Array.from({ length: 4500 }, (_, i) => store.put(reg(`bulk-${i}`))));
    await check('several steps');
  });
});

describe('change feed frames', () => {
  it('serialises each event once for every watcher', () => {
    const feed = new ChangeFeed();
    const event = feed.append('put', toView(newRecord(reg('a'), 0), 0, 1000));
    const frame = sseFrame(event);
    assert.equal(sseFrame(event), frame);
    assert.equal(frame.toString(), `id: 1\ndata: ${JSON.stringify(event)}\n\n`);
  });

  it('keeps exactly its capacity of backlog while trimming in halves', () => {
    const feed = new ChangeFeed(0, 3);
    const view = toView(newRecord(reg('a'), 0), 0, 1000);
    for (let i = 1; i <= 10; i++) {
      feed.append('put', view);
      assert.deepEqual((feed.since(Math.max(0, i - 3)) as any[]).map((e) => e.index), Array.from({ length: Math.min(i, 3) }, (_, k) => Math.max(0, i - 3) + k + 1));
      if (i > 3) assert.equal(feed.since(i - 4), 'reset');
    }
  });
});
