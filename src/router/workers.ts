import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from '../common/log.js';
import { onStopSignals } from '../common/shutdown.js';

/** IPC messages between the primary and its router workers. */
const METRICS = 'infini-router:metrics';
const STOP = 'infini-router:stop';
/** A worker asks the primary to collect a part from every worker (the dashboard's snapshot). */
const GATHER = 'infini-router:gather';
const GATHER_ASK = 'infini-router:gather-ask';
const GATHER_PART = 'infini-router:gather-part';
const GATHER_DONE = 'infini-router:gather-done';
/** How long the primary waits for the workers' parts; one that is late is left out. */
const GATHER_WAIT_MS = 3000;

interface GatherMessage {
  type: typeof GATHER | typeof GATHER_ASK | typeof GATHER_PART | typeof GATHER_DONE;
  id: number;
  kind?: string;
  value?: unknown;
  parts?: unknown[];
}

interface MetricsMessage {
  type: typeof METRICS;
  id: number;
  text?: string;
  error?: string;
}

/**
 * `--workers N`: the primary forks N router processes that share the listening port (cluster hands
 * out connections). Each worker discovers, checks and balances on its own, like nginx workers; the
 * primary re-forks a worker that dies, aggregates /metrics across workers, and on SIGINT/SIGTERM
 * asks every worker to drain and exits when all are gone.
 */
export function runPrimary(workers: number, log: Logger, opts: { drainMs: number; forwardHangup?: boolean }): void {
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  let restarts = 0;
  /** Workers that listen: they have their stop handlers; one still starting is simply terminated. */
  const listening = new Set<number>();
  const fork = (): Worker => cluster.fork();
  for (let i = 0; i < workers; i++) fork();
  log.info({ workers }, 'router primary started its workers');
  cluster.on('listening', (worker) => listening.add(worker.id));

  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker.id);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info('all router workers stopped');
        process.exit(0);
      }
      return;
    }
    const delay = Math.min(30_000, 1000 * 2 ** Math.min(restarts++, 5));
    log.warn({ worker: worker.id, code, signal, restart_in_s: delay / 1000 }, 'router worker died; forking a new one');
    setTimeout(() => {
      if (!stopping) fork();
    }, delay);
  });

  // gathers under way: the requesting worker, the parts so far, the workers still to answer
  let nextGather = 0;
  const gathers = new Map<number, { from: Worker; id: number; parts: unknown[]; left: Set<number>; timer: NodeJS.Timeout }>();
  const finishGather = (gid: number) => {
    const g = gathers.get(gid);
    if (g === undefined) return;
    gathers.delete(gid);
    clearTimeout(g.timer);
    if (g.from.isConnected()) g.from.send({ type: GATHER_DONE, id: g.id, parts: g.parts });
  };
  cluster.on('message', (worker, message: GatherMessage) => {
    if (message?.type === GATHER) {
      const gid = ++nextGather;
      const askable = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && listening.has(w.id) && w.isConnected());
      const timer = setTimeout(() => finishGather(gid), GATHER_WAIT_MS);
      gathers.set(gid, { from: worker, id: message.id, parts: [], left: new Set(askable.map((w) => w.id)), timer });
      for (const w of askable) w.send({ type: GATHER_ASK, id: gid, kind: message.kind });
      if (askable.length === 0) finishGather(gid);
    } else if (message?.type === GATHER_PART) {
      const g = gathers.get(message.id);
      if (g === undefined || !g.left.delete(worker.id)) return;
      if (message.value !== undefined) g.parts.push(message.value);
      if (g.left.size === 0) finishGather(message.id);
    }
  });

  cluster.on('message', (worker, message: MetricsMessage) => {
    if (message?.type !== METRICS) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: METRICS, id: message.id, text }),
      (err: Error) => worker.send({ type: METRICS, id: message.id, error: err.message }),
    );
  });

  const killWorkers = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
  };
  const stopWorkers = (reason: string) => {
    stopping = true;
    log.info({ reason }, 'stopping the router workers');
    for (const w of Object.values(cluster.workers ?? {})) {
      if (!w) continue;
      // a message, not a signal: workers that got the terminal's SIGINT too must not see a second one
      if (listening.has(w.id) && w.isConnected()) w.send({ type: STOP });
      else w.process.kill('SIGTERM');
    }
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    // a worker that does not finish its drain in time is stopped the hard way
    setTimeout(() => {
      log.warn('router workers did not stop within the drain timeout: killing them');
      killWorkers();
    }, opts.drainMs + 5_000).unref();
  };
  // SIGHUP (reload the TLS certificate, reopen the request log) is each worker's to act on; one still starting reads the files anyway
  if (opts.forwardHangup) {
    process.on('SIGHUP', () => {
      for (const w of Object.values(cluster.workers ?? {})) if (w && listening.has(w.id)) w.process.kill('SIGHUP');
    });
  }
  // a parent's death (up) begins the same stop through requestShutdown
  onStopSignals({
    graceful: stopWorkers,
    immediate: (signal) => {
      log.warn({ signal }, 'second signal: killing the workers now');
      killWorkers();
      process.exit(130);
    },
  });
}

/**
 * In a worker, from the moment this module loads: the primary's stop request, remembered so that
 * one that arrives while the worker is still starting (listing its registry, say) is not lost.
 */
let primaryStop: ((reason: string) => void) | undefined;
let stopRequested = false;
if (cluster.isWorker) {
  process.on('message', (message: { type?: string }) => {
    if (message?.type !== STOP) return;
    stopRequested = true;
    primaryStop?.('primary');
  });
}

/** In a worker: the primary's stop request starts the usual graceful stop (at once if it came already). */
export function onPrimaryStop(stop: (reason: string) => void): void {
  primaryStop = stop;
  if (stopRequested) stop('primary');
}

let nextAskId = 0;
/** What the primary answers a worker's request with. */
type Reply = MetricsMessage | GatherMessage;
/** Requests to the primary waiting for its reply, by id (the reply carries the id it was asked with). */
const asked = new Map<number, (reply: Reply) => void>();
let repliesListening = false;

/**
 * In a worker: sends `message` (given a fresh id) to the primary and resolves with its reply of
 * type `replyType`, or rejects with `timeoutText` after `timeoutMs`.
 */
function askPrimary<R extends Reply>(message: { type: string; kind?: string }, replyType: R['type'], timeoutMs: number, timeoutText: string): Promise<R> {
  if (!repliesListening) {
    repliesListening = true;
    process.on('message', (m: Reply) => {
      if (m?.type === METRICS || m?.type === GATHER_DONE) asked.get(m.id)?.(m);
    });
  }
  const id = ++nextAskId;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      asked.delete(id);
      reject(new Error(timeoutText));
    }, timeoutMs);
    asked.set(id, (reply) => {
      if (reply.type !== replyType) return;
      clearTimeout(timer);
      asked.delete(id);
      resolve(reply as R);
    });
    process.send!({ ...message, id });
  });
}

/** In a worker: /metrics for the whole router, aggregated by the primary over all workers. */
export async function clusterMetrics(timeoutMs = 5000): Promise<string> {
  const reply = await askPrimary<MetricsMessage>({ type: METRICS }, METRICS, timeoutMs, 'metrics from the router primary timed out');
  if (reply.error !== undefined) throw new Error(reply.error);
  return reply.text ?? '';
}

export const isWorker = cluster.isWorker;
export const workerId = cluster.worker?.id;

/** What this worker answers to the primary's gather requests, by kind. */
const answerers = new Map<string, () => unknown>();
let gatherListening = false;

function listenForGathers(): void {
  if (gatherListening) return;
  gatherListening = true;
  process.on('message', (m: GatherMessage) => {
    if (m?.type === GATHER_ASK) {
      const answer = answerers.get(m.kind ?? '');
      // a part that cannot be made is left out rather than holding up the others
      let value: unknown;
      try {
        value = answer?.();
      } catch {
        value = undefined;
      }
      process.send?.({ type: GATHER_PART, id: m.id, value });
    }
  });
}

/** In a worker: answer the primary's requests for a part of this `kind` with `part()`. */
export function answerGathers(kind: string, part: () => unknown): void {
  listenForGathers();
  answerers.set(kind, part);
}

/** In a worker: every worker's part of this `kind` (this one's included), collected by the primary. */
export async function gatherFromWorkers(kind: string, timeoutMs = GATHER_WAIT_MS + 2000): Promise<unknown[]> {
  listenForGathers();
  const reply = await askPrimary<GatherMessage>({ type: GATHER, kind }, GATHER_DONE, timeoutMs, 'the router primary did not gather the workers in time');
  return Array.isArray(reply.parts) ? reply.parts : [];
}
