/**
 * The README's tour with keys, for real: `up --api-keys examples/api-keys.toml` comes up (up
 * follows its router with a key of its own), the demo client key gets 5 requests a minute, the
 * demo admin key reads /stats, `status` needs INFINI_API_KEY; and the dashboard page in a browser
 * asks for the admin key and keeps it for the session.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { after, before, describe, it } from './helpers/test.js';
import { freePortPair, http, ROOT, spawnCli, tempDir, waitFor, type RunningService } from './helpers/services.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const EXAMPLE = join(ROOT, 'examples', 'api-keys.toml');
const chat = { model: 'tour-model', messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 4 };

describe('tour: up with examples/api-keys.toml', () => {
  let up: RunningService;
  let router: string;
  let registry: string;
  let browser: Browser | undefined;
  before(async () => {
    const dir = await tempDir('infini-keys-tour-');
    const registryPort = await freePortPair();
    const routerPort = await freePortPair();
    const sitterPort = await freePortPair();
    const file = join(dir, 'cluster.toml');
    await writeFile(
      file,
      ['[registry]', `port = ${registryPort}`, 'no-persist = true', '[router]', `router-port = ${routerPort}`, '[[babysitter]]', 'name = "tour"', `port = ${sitterPort}`, '[babysitter.backend]', 'type = "mock"', 'models = ["tour-model"]', ''].join('\n'),
    );
    up = spawnCli(['up', '--file', file, '--data-dir', join(dir, 'state'), '--api-keys', EXAMPLE]);
    // up waits until its router routes to the backend: it needs its own key for that
    await waitFor(() => up.stdout.includes('Press Ctrl-C to stop.') || !up.alive, 'cluster up', 60_000);
    assert.ok(up.alive, `${up.stdout}\n${up.stderrText}`);
    router = `http://127.0.0.1:${routerPort}`;
    registry = `http://127.0.0.1:${registryPort}`;
  });
  after(async () => {
    await browser?.close();
    await up.stop();
  });

  it('up lists the models in its table and shows how to send a key', () => {
    assert.match(up.stdout, /tour-model/);
    assert.match(up.stdout, /Authorization: Bearer/);
  });

  it('the demo client key: 5 requests a minute, then 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await http('POST', `${router}/v1/chat/completions`, { body: chat, headers: { authorization: 'Bearer sk-demo-client' } })).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    assert.equal((await http('POST', `${router}/v1/chat/completions`, { body: chat })).status, 401);
    assert.equal((await http('GET', `${router}/stats`, { headers: { authorization: 'Bearer sk-demo-client' } })).status, 403);
    assert.equal((await http('GET', `${router}/stats`, { headers: { authorization: 'Bearer sk-demo-admin' } })).status, 200);
  });

  it('status: the router row says a key is needed; with INFINI_API_KEY it has its figures', async () => {
    const run = async (env: Record<string, string>) => {
      const s = spawnCli(['status', '--registry-url', registry, '--router-url', router, '--json'], { env });
      await s.exited;
      return (JSON.parse(s.stdout) as Array<{ service: string; state: string; pid: number | null }>).find((r) => r.service === 'router')!;
    };
    const without = await run({});
    assert.equal(without.state, 'ready (needs --api-key)');
    const withKey = await run({ INFINI_API_KEY: 'sk-demo-admin' });
    assert.equal(withKey.state, 'ready');
    assert.equal(typeof withKey.pid, 'number');
  });

  it('the dashboard asks for an admin key, refuses a client key, keeps the admin key for the session', { timeout: 60_000 }, async () => {
    assert.ok(existsSync(CHROMIUM), `chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
    browser = await chromium.launch({ executablePath: CHROMIUM });
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${router}/dashboard`);
    await page.waitForSelector('#login:not([hidden])');
    assert.match((await page.textContent('#login-why'))!, /needs an admin API key/);
    await page.fill('#key', 'sk-demo-client');
    await page.click('#login button');
    await waitFor(async () => /client scope/.test((await page.textContent('#login-why')) ?? '') && (await page.isVisible('#login')), 'the client key refused');
    await page.fill('#key', 'sk-demo-admin');
    await page.click('#login button');
    await page.waitForSelector('#backends tbody tr[data-backend]');
    assert.equal(await page.isVisible('#login'), false);
    // a reload in the same tab keeps the key (sessionStorage)
    await page.reload();
    await page.waitForSelector('#backends tbody tr[data-backend]');
    assert.equal(await page.isVisible('#login'), false);
    assert.deepEqual(pageErrors, []);
  });
});
