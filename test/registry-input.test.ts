import assert from 'node:assert/strict';
import { after, before, describe, it } from './helpers/test.js';
import { hostProblem, isIpLiteral } from '../src/common/host-name.js';
import { nestsDeeperThan } from '../src/registry/json-depth.js';
import { METADATA_MAX_DEPTH, validateUpdate } from '../src/registry/record.js';
import { http, startRegistry, type RunningService } from './helpers/services.js';

function service(name: string, extra: Record<string, unknown> = {}) {
  return { name, host: '127.0.0.1', port: 9000, hostname: '127.0.0.1', url: 'http://127.0.0.1:9000', status: 'running', ...extra };
}

/** `{"a": {"a": ... 1}}` nested `levels` objects deep, built as text (no recursion in the test either). */
function nested(levels: number): string {
  return '{"a":'.repeat(levels - 1) + '{"a":1}' + '}'.repeat(levels - 1);
}

describe('host names and IP literals', () => {
  const valid = ['localhost', '127.0.0.1', '0.0.0.0', '10.0.0.5', 'gpu-01.rack-3.example.com', 'example.com.', '::1', '::', '[::1]', 'fe80::1%eth0', '::ffff:10.0.0.1', 'a'.repeat(63), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, '3com.net', 'x1', 'app_vllm_1', 'compose_net.internal'];
  const invalid: Array<[string, RegExp]> = [
    ['', /empty/],
    ['a b', /RFC 1123/],
    ['a\u0000b', /RFC 1123/],
    ['a/b', /RFC 1123/],
    ['host:80', /RFC 1123/],
    ['-lead', /RFC 1123/],
    ['trail-', /RFC 1123/],
    ['a..b', /empty label/],
    ['.a', /empty label/],
    ['a'.repeat(64), /63/],
    ['a'.repeat(300), /253/],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`, /253/],
    ['10.0.0', /IPv4/],
    ['10.0.0.256', /IPv4/],
    ['[10.0.0.1]', /RFC 1123/],
    ['[::1', /RFC 1123/],
    ['fe80::1%a b', /RFC 1123/],
    ['ü.example', /RFC 1123/],
  ];
  for (const host of valid) it(`accepts ${JSON.stringify(host.length > 40 ? `${host.slice(0, 20)}... (${host.length})` : host)}`, () => assert.equal(hostProblem(host), undefined));
  for (const [host, why] of invalid) {
    it(`refuses ${JSON.stringify(host.length > 40 ? `${host.slice(0, 20)}... (${host.length})` : host)}`, () => assert.match(hostProblem(host) ?? 'accepted', why));
  }
  it('knows IP literals with and without brackets', () => {
    assert.ok(isIpLiteral('[2001:db8::1]') && isIpLiteral('2001:db8::1') && isIpLiteral('192.168.1.1'));
    assert.ok(!isIpLiteral('[192.168.1.1]') && !isIpLiteral('example.com'));
  });
});

describe('nesting depth of JSON values', () => {
  it('counts the value itself as level 1 and never recurses', () => {
    assert.equal(nestsDeeperThan(1, 0), false);
    assert.equal(nestsDeeperThan({}, 1), false);
    assert.equal(nestsDeeperThan({ a: [] }, 1), true);
    assert.equal(nestsDeeperThan({ a: [1, { b: 2 }] }, 3), false);
    assert.equal(nestsDeeperThan({ a: [1, { b: 2 }] }, 2), true);
    assert.equal(nestsDeeperThan(JSON.parse(nested(METADATA_MAX_DEPTH)), METADATA_MAX_DEPTH), false);
    assert.equal(nestsDeeperThan(JSON.parse(nested(METADATA_MAX_DEPTH + 1)), METADATA_MAX_DEPTH), true);
    // far beyond any call stack
    assert.equal(nestsDeeperThan(JSON.parse('['.repeat(200_000) + ']'.repeat(200_000)), METADATA_MAX_DEPTH), true);
  });
});

describe('PUT body validation (unit)', () => {
  const table: Array<[unknown, RegExp | Record<string, unknown>]> = [
    [{}, {}],
    [{ port: 81, metadata: { a: 1 } }, { port: 81, metadata: { a: 1 } }],
    [{ name: 'svc', timestamp: 'x', last_heartbeat: 1.5, health_status: 'healthy', is_healthy: true, status: 'running' }, { status: 'running' }],
    [{ name: 'other' }, /field 'name' cannot change/],
    [{ name: 7 }, /field 'name' must be a string/],
    [{ last_heartbeat: 'x' }, /field 'last_heartbeat' must be a number/],
    [{ is_healthy: 'yes' }, /field 'is_healthy' must be a boolean/],
    [{ timestamp: 5 }, /field 'timestamp' must be a string/],
    [{ health_status: 5 }, /field 'health_status' must be a string/],
    [[], /request body must be a JSON object, got an array.*send \{\}/],
    [null, /got null/],
    ['x', /got a string/],
    [3, /got a number/],
  ];
  for (const [body, want] of table) {
    it(`${JSON.stringify(body)}`, () => {
      const r = validateUpdate(body, 'svc');
      if (want instanceof RegExp) assert.ok(!r.ok && want.test(r.error), JSON.stringify(r));
      else assert.deepEqual(r, { ok: true, value: want });
    });
  }
});

describe('registry input over HTTP', () => {
  let reg: RunningService;
  before(async () => {
    reg = await startRegistry();
    assert.equal((await http('POST', `${reg.url}/services`, { body: service('target', { metadata: { keep: 1 } }) })).status, 201);
  });
  after(() => reg.stop());

  const snapshot = async () => {
    const r = await http('GET', `${reg.url}/services/target`);
    return { ...r.body, last_heartbeat: 0, is_healthy: 0 };
  };

  it('refuses bad registrations with 400 naming the field and keeps serving', async () => {
    const cases: Array<[string, RegExp]> = [
      [JSON.stringify(service('deep', { metadata: 'PLACEHOLDER' })).replace('"PLACEHOLDER"', nested(20_000)), /field 'metadata' must nest objects and arrays at most 64 levels deep/],
      [JSON.stringify(service('deep65', { metadata: 'PLACEHOLDER' })).replace('"PLACEHOLDER"', nested(METADATA_MAX_DEPTH + 1)), /field 'metadata' must nest/],
      [JSON.stringify(service('deep-array', { metadata: 'PLACEHOLDER' })).replace('"PLACEHOLDER"', `{"a":${'['.repeat(300_000)}${']'.repeat(300_000)}}`), /field 'metadata' must nest/],
      [JSON.stringify(service('sp', { host: 'a b' })), /field 'host' must be a host name/],
      [JSON.stringify(service('nul', { host: 'a\u0000b' })), /field 'host' must be a host name/],
      [JSON.stringify(service('slash', { host: 'a/b' })), /field 'host' must be a host name/],
      [JSON.stringify(service('long', { host: 'a'.repeat(300) })), /field 'host' must be a host name of at most 253/],
      [JSON.stringify(service('hn', { hostname: 'x y' })), /field 'hostname' must be a host name/],
      [JSON.stringify(service('hn2', { hostname: '' })), /field 'hostname' must not be empty/],
      [JSON.stringify(service('ip', { host: '10.0.0.300' })), /field 'host' must be a valid IPv4/],
    ];
    for (const [body, pattern] of cases) {
      const r = await http('POST', `${reg.url}/services`, { body });
      assert.equal(r.status, 400, body.slice(0, 120));
      assert.match(r.body.error, pattern, body.slice(0, 120));
    }
    const ok = await http('POST', `${reg.url}/services`, { body: JSON.stringify(service('deep64', { metadata: 'PLACEHOLDER' })).replace('"PLACEHOLDER"', nested(METADATA_MAX_DEPTH)) });
    assert.equal(ok.status, 201, ok.text);
    for (const host of ['localhost', '10.0.0.5', '::1', '[::1]', 'gpu-01.example.com']) {
      const r = await http('POST', `${reg.url}/services`, { body: service(`host-${host.replace(/[^a-z0-9]/gi, '')}`, { host, hostname: host }) });
      assert.equal(r.status, 201, `${host}: ${r.text}`);
    }
    assert.equal((await http('GET', `${reg.url}/health`)).status, 200);
  });

  it('PUT refuses non-objects and ill-typed fields with 400 and changes nothing; {} refreshes the heartbeat', async () => {
    const before = await snapshot();
    const cases: Array<[string, RegExp]> = [
      ['', /must be a JSON object \(send \{\} to only refresh the heartbeat\)/],
      ['not json', /invalid JSON/],
      ['[1]', /got an array/],
      ['"x"', /got a string/],
      ['null', /got null/],
      ['7', /got a number/],
      ['{"port":"81"}', /field 'port'/],
      ['{"port":0}', /field 'port'/],
      ['{"host":5}', /field 'host' must be a string/],
      ['{"host":"a b"}', /field 'host' must be a host name/],
      ['{"hostname":"a/b"}', /field 'hostname'/],
      ['{"url":"ftp://x"}', /field 'url'/],
      ['{"status":null}', /field 'status'/],
      ['{"metadata":[1]}', /field 'metadata' must be a JSON object/],
      [`{"metadata":${nested(5000)}}`, /field 'metadata' must nest/],
      ['{"weight":-1}', /field 'weight'/],
      ['{"name":"renamed"}', /field 'name' cannot change/],
      ['{"last_heartbeat":"now"}', /field 'last_heartbeat'/],
      ['{"is_healthy":1}', /field 'is_healthy'/],
      ['{"port":81,"status":7}', /field 'status'/],
    ];
    for (const [body, pattern] of cases) {
      const r = await http('PUT', `${reg.url}/services/target`, { body });
      assert.equal(r.status, 400, `PUT ${body.slice(0, 60)}: ${r.text}`);
      assert.match(r.body.error, pattern, `PUT ${body.slice(0, 60)}`);
    }
    assert.deepEqual(await snapshot(), before, 'refused PUTs change nothing');
    const hb0 = (await http('GET', `${reg.url}/services/target`)).body.last_heartbeat;
    await new Promise((r) => setImmediate(r));
    const empty = await http('PUT', `${reg.url}/services/target`, { body: '{}' });
    assert.equal(empty.status, 200);
    assert.ok(empty.body.service.last_heartbeat >= hb0);
    assert.deepEqual({ ...empty.body.service, last_heartbeat: 0, is_healthy: 0 }, before);
    const same = await http('PUT', `${reg.url}/services/target`, { body: { ...(await http('GET', `${reg.url}/services/target`)).body, port: 9009 } });
    assert.equal(same.status, 200, 'a record read back and PUT with a change is accepted');
    assert.equal(same.body.service.port, 9009);
  });
});
