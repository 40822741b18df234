/**
 * The router's dashboard in a real browser (playwright-core driving Debian's chromium) against a
 * running cluster: registry, two babysitters over the mock engine, router. And the snapshot's sums
 * over --workers.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { after, describe, it } from './helpers/test.js';
import { freePortPair, http, startMocks, startRegistry, startService, tempDir, waitFor, writeStaticServices, type RunningService } from './helpers/services.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** A streamed chat request: the dashboard's TTFT is the streams' (first event), as infini_router_ttft_seconds{stream="true"}. */
const chat = (model: string) => ({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 8, stream: true });

async function startSitter(registryUrl: string, name: string, model: string): Promise<{ sitter: RunningService; port: number }> {
  const dir = await tempDir();
  const port = await freePortPair();
  const cfg = join(dir, `${name}.toml`);
  await writeFile(cfg, `name = "${name}"\nhost = "127.0.0.1"\nport = ${port}\nregistry_url = "${registryUrl}"\n[babysitter]\nheartbeat_interval = 0.5\n[backend]\ntype = "mock"\nmodels = ["${model}"]\n`);
  return { sitter: await startService(['babysitter', '--config-file', cfg]), port };
}

/** POST over a connection of its own (Connection: close), so that --workers spreads them. */
function postFresh(url: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Whether a canvas has any drawn pixel. */
const drawn = (page: Page, selector: string) =>
  page.$eval(selector, (c) => {
    const canvas = c as HTMLCanvasElement;
    const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) return true;
    return false;
  });

let browser: Browser | undefined;
after(async () => {
  await browser?.close();
});

describe('dashboard in a browser', () => {
  it('shows every backend, draws charts that update with traffic, shows a killed backend down; no console errors', { timeout: 90_000 }, async () => {
    assert.ok(existsSync(CHROMIUM), `chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
    const reg = await startRegistry();
    await startSitter(reg.url, 'dash-a', 'model-a');
    const b = await startSitter(reg.url, 'dash-b', 'model-b');
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--registry-url', reg.url, '--health-interval', '1']);
    await waitFor(async () => {
      const ids = ((await http('GET', `${router.url}/v1/models`)).body?.data ?? []).map((m: any) => m.id);
      return ids.includes('model-a') && ids.includes('model-b');
    }, 'both backends routable');

    browser = await chromium.launch({ executablePath: CHROMIUM });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    const res = await page.goto(`${router.url}/dashboard`);
    assert.equal(res?.status(), 200);

    // every backend by its babysitter's name, ready
    const state = (name: string) => page.locator(`#backends tr[data-backend="${name}"] td.state`);
    for (const name of ['dash-a', 'dash-b']) await waitFor(async () => (await state(name).textContent()) === 'ready', `${name} ready on the page`);
    assert.equal(await page.locator('#backends tbody tr').count(), 2);

    // a chart per model, three plots each, drawn
    const plot = (model: string, i: number) => `.model[data-model="${model}"] .plot:nth-child(${i + 1}) canvas`;
    await page.waitForSelector(plot('model-b', 2));
    for (const model of ['model-a', 'model-b']) for (let i = 0; i < 3; i++) assert.ok(await drawn(page, plot(model, i)), `${model} plot ${i} drawn`);
    const before = await page.$eval(plot('model-a', 0), (c) => (c as HTMLCanvasElement).toDataURL());

    // traffic: the model's history, the backend's req/s and TTFT, and the chart follow
    for (let i = 0; i < 20; i++) assert.equal((await http('POST', `${router.url}/v1/chat/completions`, { body: chat('model-a') })).status, 200);
    await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.model[data-model="model-a"]')?.dataset.requests) >= 20, undefined, { timeout: 15_000 });
    const row = page.locator('#backends tr[data-backend="dash-a"] td');
    await waitFor(async () => (await row.nth(5).textContent()) !== '0', 'dash-a req/s on the page');
    assert.match((await row.nth(7).textContent())!, /^\d+ ms$/, 'TTFT p50');
    assert.notEqual(await page.$eval(plot('model-a', 0), (c) => (c as HTMLCanvasElement).toDataURL()), before, 'the requests chart redrew');
    // the busiest model's charts come first
    assert.equal(await page.$eval('#charts .model', (e) => (e as HTMLElement).dataset.model), 'model-a');

    // an unknown model: the router's 404 is listed among the recent errors with its request id
    const id = 'dashboard-test-404';
    const miss = await http('POST', `${router.url}/v1/chat/completions`, { body: chat('no-such-model'), headers: { 'x-request-id': id } });
    assert.equal(miss.status, 404);
    await page.waitForFunction((rid) => [...document.querySelectorAll('#errors td')].some((td) => td.textContent === rid), id, { timeout: 10_000 });

    // the filter asks the router for the matching rows only
    await page.fill('#filter', 'model-b');
    await waitFor(async () => (await page.locator('#backends tbody tr').count()) === 1 && (await page.locator('#backends tbody tr').getAttribute('data-backend')) === 'dash-b', 'filtered to dash-b');
    await page.fill('#filter', '');
    await waitFor(async () => (await page.locator('#backends tbody tr').count()) === 2, 'both rows again');

    // a killed babysitter (its engine follows it) shows as down within seconds
    process.kill(b.sitter.proc.pid!, 'SIGKILL');
    await b.sitter.exited;
    await waitFor(async () => (await state('dash-b').textContent()) === 'down', 'dash-b down on the page', 15_000);
    assert.equal(await page.locator('#backends tr[data-backend="dash-b"]').getAttribute('class'), 'down');
    assert.equal(await state('dash-a').textContent(), 'ready');

    const shot = join(await tempDir('infini-dashboard-'), 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`dashboard screenshot: ${shot}`);
    assert.deepEqual(problems, []);
  });
});

describe('dashboard snapshot over --workers', () => {
  it('adds up every worker\'s traffic, history and in-flight through the primary', { timeout: 60_000 }, async () => {
    const mocks = await startMocks([{ models: 'm' }]);
    const file = await writeStaticServices([{ name: 'solo', port: mocks[0]!.port, models: ['m'] }]);
    const router = await startService(['router', '--router-port', '0', '--host', '127.0.0.1', '--static-services', file, '--workers', '2']);
    await router.waitForLog((l) => l.msg === 'router listening' && l.pid !== router.logs.find((x) => x.msg === 'router listening')!.pid);
    const n = 24;
    for (let i = 0; i < n; i++) assert.equal(await postFresh(`${router.url}/v1/chat/completions`, chat('m')), 200);
    const snap = await waitFor(async () => {
      const s = (await http('GET', `${router.url}/dashboard/api/snapshot`)).body;
      return s?.history?.models?.find((m: any) => m.model === 'm')?.requests === n ? s : undefined;
    }, `${n} requests in the history, summed over the workers`);
    assert.equal(snap.workers, 2);
    const row = snap.backends.find((r: any) => r.name === 'solo');
    assert.ok(row.req_s > 0 && row.ttft_p50_ms > 0, JSON.stringify(row));
    assert.equal(row.in_flight, 0);
    assert.equal(snap.history.t.length, snap.history.models[0].req_s.length);
    const traffic = (await http('GET', `${router.url}/dashboard/api/traffic`)).body;
    assert.equal(traffic.backends[0].backend, 'solo');
    assert.ok(traffic.total.req_s > 0 && traffic.backends[0].ttft_p50_ms > 0, JSON.stringify(traffic));
    await router.stop();
    await Promise.all(mocks.map((m) => m.stop()));
  });
});
