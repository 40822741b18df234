/**
 * The fleet's own traffic to the registry in `npm run bench:scale`, in a worker thread: the burst
 * of N registrations (at most `concurrency` at once), then a heartbeat from every service every
 * `heartbeatMs` (spread evenly: N / period per second), later also a steady churn of registration
 * changes (a PUT of new metadata, `churnPerS` a second), until told to stop.
 *
 * Messages in: {cmd: 'register'}, {cmd: 'abort'} (stops a burst), {cmd: 'beat'}, {cmd: 'churn'},
 * {cmd: 'stop'}.
 * Messages out: a RegisterResult after a burst, a BeatResult after stop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { registration, serviceName } from './scale-fleet.js';

export interface LoadOptions {
  registryUrl: string;
  n: number;
  ports: number[];
  concurrency: number;
  heartbeatMs: number;
  churnPerS: number;
}

export interface RegisterResult {
  type: 'registered';
  ok: number;
  errors: number;
  aborted: boolean;
  startMs: number;
  endMs: number;
  firstError?: string;
}

export interface BeatResult {
  type: 'beats';
  /** Latency (ms) of every heartbeat answered. */
  latencies: number[];
  /** Heartbeats answered per second, keyed by epoch second. */
  perSecond: Array<[number, number]>;
  sent: number;
  errors: number;
  /** Heartbeats not sent because `maxOutstanding` were still out (the registry fell behind). */
  skipped: number;
  churn: { sent: number; ok: number; errors: number };
  firstError?: string;
}

const opts = workerData as LoadOptions;
const now = () => performance.timeOrigin + performance.now();
const pool = new Pool(opts.registryUrl, { connections: Math.max(opts.concurrency, 64), pipelining: 1, headersTimeout: 120_000, bodyTimeout: 120_000 });
let aborted = false;
let beating = false;
let churning = false;
let firstError: string | undefined;
/** Indices of the services that registered: only they heartbeat and change. */
let registered: number[] = [];

async function call(method: 'POST' | 'PUT', path: string, body?: unknown): Promise<number> {
  const res = await pool.request({ method, path, body: body === undefined ? undefined : JSON.stringify(body), headers: body === undefined ? {} : { 'content-type': 'application/json' } });
  await res.body.dump();
  return res.statusCode;
}

async function register(): Promise<RegisterResult> {
  let next = 0;
  let ok = 0;
  let errors = 0;
  const startMs = now();
  const lane = async () => {
    while (!aborted && next < opts.n) {
      const i = next++;
      try {
        const status = await call('POST', '/services', registration(i, opts.ports));
        if (status === 201 || status === 200) {
          ok++;
          registered.push(i);
        } else {
          errors++;
          firstError ??= `registration answered ${status}`;
        }
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.n) }, lane));
  registered.sort((a, b) => a - b);
  const result: RegisterResult = { type: 'registered', ok, errors, aborted, startMs, endMs: now(), ...(firstError ? { firstError } : {}) };
  firstError = undefined;
  return result;
}

const latencies: number[] = [];
const perSecond = new Map<number, number>();
const churn = { sent: 0, ok: 0, errors: 0 };
let sent = 0;
let errors = 0;
let skipped = 0;
let outstanding = 0;
const maxOutstanding = Math.max(256, opts.concurrency);

async function beat(i: number): Promise<void> {
  if (outstanding >= maxOutstanding) {
    skipped++;
    return;
  }
  outstanding++;
  sent++;
  const at = now();
  try {
    const status = await call('POST', `/services/${serviceName(i)}/heartbeat`);
    if (status !== 200) {
      errors++;
      firstError ??= `heartbeat answered ${status}`;
    } else {
      const done = now();
      latencies.push(done - at);
      const s = Math.floor(done / 1000);
      perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
    }
  } catch (err) {
    errors++;
    firstError ??= (err as Error).message;
  } finally {
    outstanding--;
  }
}

/** A change of a registration that keeps it routable: new metadata with a revision, same model. */
async function change(i: number, rev: number): Promise<void> {
  churn.sent++;
  const reg = registration(i, opts.ports);
  try {
    const status = await call('PUT', `/services/${reg.name}`, { metadata: { ...reg.metadata, rev } });
    if (status === 200) churn.ok++;
    else churn.errors++;
  } catch {
    churn.errors++;
  }
}

/** Every tick sends the heartbeats due since the last one, so that the rate holds through late ticks. */
function startBeating(): void {
  beating = true;
  const start = now();
  let beatsDone = 0;
  let changesDone = 0;
  let churnStart = 0;
  const fleet = registered;
  const perMs = fleet.length / opts.heartbeatMs;
  const tick = () => {
    if (!beating) return;
    const elapsed = now() - start;
    const due = Math.floor(elapsed * perMs);
    for (; beatsDone < due; beatsDone++) void beat(fleet[beatsDone % fleet.length]!);
    if (churning) {
      churnStart ||= now();
      const changesDue = Math.floor(((now() - churnStart) / 1000) * opts.churnPerS);
      for (; changesDone < changesDue && fleet.length > 0; changesDone++) void change(fleet[(changesDone * 7919) % fleet.length]!, changesDone);
    }
    setTimeout(tick, 10);
  };
  tick();
}

parentPort!.on('message', async (msg: { cmd: string }) => {
  if (msg.cmd === 'register') parentPort!.postMessage(await register());
  else if (msg.cmd === 'abort') aborted = true;
  else if (msg.cmd === 'beat') startBeating();
  else if (msg.cmd === 'churn') churning = true;
  else if (msg.cmd === 'stop') {
    beating = false;
    churning = false;
    const deadline = now() + 30_000;
    while (outstanding > 0 && now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const result: BeatResult = { type: 'beats', latencies, perSecond: [...perSecond], sent, errors, skipped, churn, ...(firstError ? { firstError } : {}) };
    parentPort!.postMessage(result);
    void pool.destroy();
  }
});
