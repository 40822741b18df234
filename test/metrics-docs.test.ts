/**
 * The README's metric tables and the services' own /metrics stay in step: every metric a table
 * names is served, and every metric a service serves (beyond prom-client's process defaults) is
 * in a table.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from './helpers/test.js';
import { freePortPair, http, ROOT, startMocks, startRegistry, startService, waitFor, writeStaticServices } from './helpers/services.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** Metric names in the README's table rows that start with `prefix` (wildcard rows left out). */
function documented(prefix: string): Set<string> {
  const names = new Set<string>();
  for (const line of README.split('\n')) {
    const m = /^\| `([a-z_]+)`/.exec(line);
    if (m && m[1]!.startsWith(prefix)) names.add(m[1]!);
  }
  return names;
}

/** Metric families a /metrics answer declares (`# TYPE name kind`). */
async function served(url: string): Promise<Set<string>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
}

/** prom-client's default process metrics, documented by one wildcard row. */
const isDefault = (prefix: string, name: string) => name.startsWith(`${prefix}process_`) || name.startsWith(`${prefix}nodejs_`);

function compare(prefix: string, docs: Set<string>, live: Set<string>): void {
  assert.ok(docs.size > 0, `the README documents ${prefix}* metrics`);
  for (const name of docs) assert.ok(live.has(name), `${name} is in the README but not served`);
  for (const name of live) if (!isDefault(prefix, name)) assert.ok(docs.has(name), `${name} is served but not in the README`);
}

describe('README metric tables match /metrics', () => {
  it('registry', async () => {
    const reg = await startRegistry();
    compare('infini_registry_', documented('infini_registry_'), await served(reg.url));
  });

  it('router (after traffic of every kind, so that every family has series)', async () => {
    const [mock] = await startMocks([{ models: 'm' }]);
    const file = await writeStaticServices([{ name: 'mock-a', port: mock!.port, models: ['m'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file]);
    await http('POST', `${router.url}/v1/chat/completions`, { body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } } });
    const live = await served(router.url);
    // the registry feed state exists only with a registry
    live.add('infini_router_registry_feed_state');
    compare('infini_router_', documented('infini_router_'), live);
    const reg = await startRegistry();
    const watching = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url]);
    assert.ok((await served(watching.url)).has('infini_router_registry_feed_state'));
  });

  it('babysitter (registered, so the registry series exist)', async () => {
    const reg = await startRegistry();
    const port = await freePortPair();
    const sitter = await startService(['babysitter', '--port', String(port), '--name', 'documented', '--host', '127.0.0.1', '--registry-url', reg.url, '--service-type', 'mock', '--args', 'm1']);
    await waitFor(async () => (await served(sitter.url)).has('infini_babysitter_registrations_total'), 'registry series present');
    compare('infini_babysitter_', documented('infini_babysitter_'), await served(sitter.url));
  });
});
