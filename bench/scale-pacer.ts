/**
 * A paced request stream of `npm run bench:scale`, in a worker thread of its own so that the
 * benchmark's other work never delays it: sends one request every `intervalMs` (cycling over
 * `requests`), at most `maxOutstanding` at once (a tick with that many still out is skipped, not
 * queued), and records when each was sent and how long it took. With maxOutstanding 1 it is a
 * poller that sees a stall as one long answer; with more, a steady load.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';

export interface PacerOptions {
  origin: string;
  requests: Array<{ method: 'GET' | 'POST'; path: string; body?: string }>;
  intervalMs: number;
  maxOutstanding: number;
  connections: number;
}

export interface PacerResult {
  /** [sent at (epoch ms), latency ms, HTTP status or 0 for a failure] per request, in send order. */
  records: number[];
  skipped: number;
  firstError?: string;
}

const opts = workerData as PacerOptions;
const now = () => performance.timeOrigin + performance.now();
const pool = new Pool(opts.origin, { connections: opts.connections, pipelining: 1, headersTimeout: 120_000, bodyTimeout: 120_000 });
const records: number[] = [];
let outstanding = 0;
let skipped = 0;
let firstError: string | undefined;
let next = 0;
let stopping = false;

async function one(): Promise<void> {
  const r = opts.requests[next++ % opts.requests.length]!;
  const at = now();
  const slot = records.length;
  records.push(at, NaN, 0);
  outstanding++;
  try {
    const res = await pool.request({ method: r.method, path: r.path, body: r.body, headers: r.body ? { 'content-type': 'application/json' } : {} });
    for await (const _ of res.body) {
      // consumed, not parsed: the answer's size must not cost this thread
    }
    records[slot + 2] = res.statusCode;
  } catch (err) {
    firstError ??= (err as Error).message;
  } finally {
    records[slot + 1] = now() - at;
    outstanding--;
  }
}

const start = now();
let ticks = 0;
function tick(): void {
  if (stopping) return;
  if (outstanding < opts.maxOutstanding) void one();
  else skipped++;
  ticks++;
  // scheduled against the start, so that a late tick does not shift every later one
  setTimeout(tick, Math.max(0, start + ticks * opts.intervalMs - now()));
}
tick();

parentPort!.on('message', async (msg: { cmd: string }) => {
  if (msg.cmd !== 'stop') return;
  stopping = true;
  // requests still out are waited for a while, so that a stall is counted whole; any still out
  // then count as failures that lasted until now
  const deadline = now() + 30_000;
  while (outstanding > 0 && now() < deadline) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < records.length; i += 3) if (Number.isNaN(records[i + 1])) records[i + 1] = now() - records[i]!;
  void pool.destroy();
  const result: PacerResult = { records, skipped, ...(firstError ? { firstError } : {}) };
  parentPort!.postMessage(result);
});
