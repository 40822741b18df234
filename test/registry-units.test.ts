import assert from 'node:assert/strict';
import { describe, it } from './helpers/test.js';
import { ChangeFeed } from '../src/registry/change-feed.js';
import { isHealthy, probeUrl, toView, validateRegistration, validateUpdate, newRecord } from '../src/registry/record.js';

const view = (name: string) => toView(newRecord({ name, host: 'h', port: 1, hostname: 'h', url: 'http://h:1', status: 'running', metadata: {} }, 0), 0, 1000);

describe('ChangeFeed', () => {
  it('numbers events and replays after an index', () => {
    const feed = new ChangeFeed(10, 3);
    feed.append('put', view('a'));
    feed.append('put', view('b'));
    assert.equal(feed.index, 12);
    assert.deepEqual((feed.since(10) as any[]).map((e) => e.index), [11, 12]);
    assert.deepEqual(feed.since(12), []);
  });

  it('answers reset outside the backlog or in the future', () => {
    const feed = new ChangeFeed(0, 2);
    for (const n of ['a', 'b', 'c', 'd']) feed.append('put', view(n));
    assert.deepEqual((feed.since(2) as any[]).map((e) => e.index), [3, 4]);
    assert.equal(feed.since(1), 'reset');
    assert.equal(feed.since(5), 'reset');
  });

  it('delivers to subscribers until they unsubscribe', () => {
    const feed = new ChangeFeed();
    const seen: number[] = [];
    const off = feed.subscribe((e) => seen.push(e.index));
    feed.append('put', view('a'));
    off();
    feed.append('delete', view('a'));
    assert.deepEqual(seen, [1]);
  });
});

describe('service records', () => {
  const base = { name: 'svc-1', host: 'h', port: 80, hostname: 'h', url: 'http://h:80', status: 'running' };

  it('validates and defaults', () => {
    const r = validateRegistration({ ...base, hostname: undefined, extra: 1 });
    assert.ok(r.ok);
    assert.equal(r.ok && r.value.hostname, 'h');
    assert.deepEqual(r.ok && r.value.metadata, {});
    assert.ok(validateRegistration({ ...base, port: 65535, weight: 3 }).ok);
    assert.ok(validateRegistration({ ...base, name: 'a'.repeat(253) }).ok);
    assert.ok(!validateRegistration({ ...base, name: 'a'.repeat(254) }).ok);
    assert.ok(!validateRegistration({ ...base, port: 0 }).ok);
    assert.ok(!validateRegistration({ ...base, weight: -1 }).ok);
    assert.ok(!validateRegistration(null).ok);
    assert.ok(validateUpdate({}).ok);
    const u = validateUpdate({ status: 7 });
    assert.ok(!u.ok && /'status'/.test(u.error));
  });

  it('computes health from status and heartbeat age', () => {
    const rec = newRecord({ ...base, metadata: {} }, 1000);
    assert.ok(isHealthy(rec, 1500, 1000));
    assert.ok(!isHealthy(rec, 2000, 1000));
    assert.ok(!isHealthy({ ...rec, status: 'starting' }, 1000, 1000));
    assert.equal(toView(rec, 1500, 1000).last_heartbeat, 1);
  });

  it('probes the babysitter at port+1 for openai-api records', () => {
    assert.equal(probeUrl({ host: '10.0.0.5', port: 8100, url: 'http://10.0.0.5:8100', metadata: { type: 'openai-api' } }), 'http://10.0.0.5:8101/health');
    assert.equal(probeUrl({ host: 'h', port: 8101, url: 'http://h:8101/', metadata: {} }), 'http://h:8101/health');
    assert.equal(probeUrl({ host: '::1', port: 80, url: 'x', metadata: { type: 'openai-api' } }), 'http://[::1]:81/health');
  });
});
