/**
 * The open-loop client of `npm run bench:routing`: requests go out at their Poisson arrival
 * times whatever the answers do (a closed loop would slow down with the server and hide its
 * queueing), each streamed, timed from its scheduled arrival (so the client's own lateness
 * counts against it, never for it): time to first token, end, status.
 */
import { setMaxListeners } from 'node:events';
import { Pool } from 'undici';

export interface RequestRecord {
  /** Scheduled arrival, ms from the point's start. */
  at: number;
  /** In the measured window (after the warm-up). */
  measured: boolean;
  /** Sent (a point cut short sends no more). */
  sent: boolean;
  /** Arrival to first streamed byte (the mock sends headers and the first token together), ms. */
  ttftMs?: number;
  /** Arrival to the stream's end, ms (absent: cut off). */
  endMs?: number;
  status: number;
  /** Set for a failure (a status other than 200, a connection error); not for our own abort. */
  error?: string;
}

export interface PointOptions {
  arrivals: readonly number[];
  bodies: readonly string[];
  headers?: ReadonlyArray<Record<string, string> | undefined>;
  warmMs: number;
  windowMs: number;
  /** After the last arrival, how long requests of the window may take to finish before they are cut off. */
  graceMs: number;
  sloMs: number;
  /** Called once the warm-up is over (scrape the backends' counters then). */
  onWindowStart?: () => void;
}

export interface PointRecords {
  records: RequestRecord[];
  /** The point was stopped early: p99 TTFT of the window was certain to exceed the SLO. */
  cut: boolean;
  /** When the point ended (ms from its start): a request still waiting then had waited this long. */
  endMs: number;
  /** How late the client sent requests behind their schedule: the largest lag, ms (a busy client shows here). */
  maxLagMs: number;
}

/** Requests over `sloMs` (or still without a first token that long after arrival) beyond which the window's nearest-rank p99 must exceed it. */
export function allowedOverSlo(n: number): number {
  return n - Math.ceil(0.99 * n);
}

/** Runs one rate point: sends every arrival, waits for the window's answers (within the grace), cuts the rest. */
export async function runPoint(pool: Pool, path: string, o: PointOptions): Promise<PointRecords> {
  const start = performance.now();
  const ac = new AbortController();
  // every request in flight listens on it
  setMaxListeners(Infinity, ac.signal);
  const records: RequestRecord[] = o.arrivals.map((at) => ({ at, measured: at >= o.warmMs && at < o.warmMs + o.windowMs, sent: false, status: 0 }));
  const measuredCount = records.filter((r) => r.measured).length;
  const allowed = allowedOverSlo(measuredCount);
  const pending = new Set<Promise<void>>();
  let maxLagMs = 0;

  const send = (i: number) => {
    const r = records[i]!;
    r.sent = true;
    const lag = performance.now() - start - r.at;
    if (lag > maxLagMs) maxLagMs = lag;
    const p = (async () => {
      try {
        const res = await pool.request({
          method: 'POST',
          path,
          body: o.bodies[i]!,
          headers: { 'content-type': 'application/json', ...(o.headers?.[i] ?? {}) },
          signal: ac.signal,
        });
        r.status = res.statusCode;
        for await (const _chunk of res.body) {
          // streamed events are not parsed: their count is the request's max_tokens
          if (r.ttftMs === undefined) r.ttftMs = performance.now() - start - r.at;
        }
        r.endMs = performance.now() - start - r.at;
        if (r.status !== 200) r.error = `status ${r.status}`;
      } catch (err) {
        if (!ac.signal.aborted) r.error = (err as Error).message || String(err);
      }
    })();
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  let next = 0;
  let cut = false;
  let windowStarted = false;
  const overSlo = (now: number) => {
    let n = 0;
    for (const r of records) {
      if (!r.measured || r.at > now) continue;
      if (r.ttftMs !== undefined ? r.ttftMs > o.sloMs : now - r.at > o.sloMs) n++;
    }
    return n;
  };
  const lastArrival = o.warmMs + o.windowMs;
  await new Promise<void>((resolve) => {
    let checks = 0;
    const tick = () => {
      const now = performance.now() - start;
      if (!windowStarted && now >= o.warmMs) {
        windowStarted = true;
        o.onWindowStart?.();
      }
      while (next < records.length && records[next]!.at <= now) send(next++);
      // every 100 ms: stop early once the window's p99 cannot meet the SLO any more
      if (++checks % 20 === 0 && now >= o.warmMs && overSlo(now) > allowed) {
        cut = true;
        return resolve();
      }
      if (now >= lastArrival && next >= records.length) {
        const unfinished = records.some((r) => r.measured && r.endMs === undefined && r.error === undefined);
        if (!unfinished || now >= lastArrival + o.graceMs) return resolve();
      }
      setTimeout(tick, next < records.length ? Math.max(0, Math.min(5, records[next]!.at - now)) : 5);
    };
    tick();
  });
  const endMs = performance.now() - start;
  ac.abort();
  await Promise.allSettled([...pending]);
  return { records, cut, endMs, maxLagMs };
}
