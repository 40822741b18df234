import { request as httpsRequest } from 'node:https';
import { connect, type LookupFunction } from 'node:net';
import type { ProbeGuard } from './guarded-lookup.js';

/** Outcome of one GET probe: the status code, or why there was none (the babysitter's probes). */
export type ProbeStatus = number | 'refused' | 'error';

/**
 * GETs a URL for its status only, bounded by `timeoutMs`; never throws. 'refused' means nothing
 * listens there (callers fall back to another address), 'error' any other failure or a timeout.
 */
export async function probeStatus(url: string, timeoutMs: number): Promise<ProbeStatus> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel().catch(() => undefined);
    return res.status;
  } catch (err) {
    return (err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED' ? 'refused' : 'error';
  }
}

export function is2xx(status: CheckStatus): boolean {
  return typeof status === 'number' && status >= 200 && status < 300;
}

/**
 * Outcome of checkHttp: a status code, 'refused', 'error', 'timeout' (no answer within the
 * timeout), or 'inconclusive': the timeout fired so late that this process, not the target, was
 * too busy to tell (see lagToleranceMs).
 */
export type CheckStatus = ProbeStatus | 'timeout' | 'inconclusive';

/**
 * A timeout timer that fires later than this past its due time means the event loop lagged
 * (blocked, or swamped with work): an answer may have been waiting unread, so the timeout says
 * nothing about the target.
 */
export const lagToleranceMs = (timeoutMs: number): number => Math.max(100, timeoutMs / 10);

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
/** A response head longer than this is no health answer. */
const MAX_HEAD_BYTES = 16 * 1024;

/** One GET under way: reports the status and Location of the answer, or an error (its code). */
type Get = (target: URL, answer: (status: number, location: string | undefined) => void, fail: (code?: string) => void, lookup: LookupFunction | undefined) => { destroy(): void };

/**
 * Plain HTTP, written and read by hand: a health check needs the status line and a Location
 * header, nothing else, and a bare socket costs less than half the CPU of http.request (which
 * matters at thousands of checks per second).
 */
const plainGet: Get = (target, answer, fail, lookup) => {
  const socket = connect({ host: target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port) || 80, ...(lookup ? { lookup } : {}) });
  socket.setNoDelay(true);
  let head = '';
  socket.on('connect', () => socket.write(`GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nAccept: */*\r\nConnection: close\r\n\r\n`));
  socket.on('data', (chunk: Buffer) => {
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return void (head.length > MAX_HEAD_BYTES && fail());
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!status) return fail();
    answer(Number(status[1]), /\r\nlocation:[ \t]*([^\r\n]*)/i.exec(head.slice(0, end))?.[1]?.trim());
  });
  socket.on('error', (err: NodeJS.ErrnoException) => fail(err.code));
  // closed before a whole head arrived
  socket.on('close', () => fail());
  return socket;
};

/** HTTPS through node:https (certificate checks and all), rare for health endpoints. */
const tlsGet: Get = (target, answer, fail, lookup) => {
  const req = httpsRequest(target, { agent: false, headers: { connection: 'close' }, ...(lookup ? { lookup } : {}) });
  req.on('error', (err: NodeJS.ErrnoException) => fail(err.code));
  req.on('response', (res) => {
    res.resume();
    answer(res.statusCode ?? 0, res.headers.location);
  });
  req.end();
  return req;
};

/**
 * The health checks of the registry's prober and the router's checker: a GET for the status only,
 * on a connection of its own that is closed as soon as the head arrives (no keep-alive sockets
 * left open per target: at 50,000 targets that exhausts file descriptors), following redirects as
 * fetch did. The timeout runs from when this call starts. Never throws. Under a `guard`, every
 * target, redirects included, keeps to the addresses it allows ('error' otherwise): a health
 * check is a request too, and a redirect must not lead it where a registration could not.
 */
export function checkHttp(url: string, timeoutMs: number, guard?: ProbeGuard): Promise<CheckStatus> {
  return new Promise((resolve) => {
    let settled = false;
    let current: { destroy(): void } | undefined;
    const finish = (status: CheckStatus) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      current?.destroy();
      resolve(status);
    };
    const dueAt = performance.now() + timeoutMs;
    const timer = setTimeout(() => {
      const lateMs = performance.now() - dueAt;
      // an answer that arrived while the loop was busy is read in this turn's poll phase: let it
      setImmediate(() => finish(lateMs > lagToleranceMs(timeoutMs) ? 'inconclusive' : 'timeout'));
    }, timeoutMs);
    const get = (target: URL, redirects: number): void => {
      if (target.protocol !== 'http:' && target.protocol !== 'https:') return finish('error');
      if (guard?.refuses(target)) return finish('error');
      let attempt: { destroy(): void };
      try {
        attempt = (target.protocol === 'https:' ? tlsGet : plainGet)(
          target,
          (status, location) => {
            if (current !== attempt) return;
            if (!REDIRECTS.has(status) || !location || redirects >= MAX_REDIRECTS) return finish(status);
            let next: URL;
            try {
              next = new URL(location, target);
            } catch {
              return finish(status);
            }
            attempt.destroy();
            get(next, redirects + 1);
          },
          (code) => {
            if (current === attempt) finish(code === 'ECONNREFUSED' ? 'refused' : 'error');
          },
          guard?.lookup,
        );
      } catch {
        return finish('error');
      }
      current = attempt;
    };
    let first: URL;
    try {
      first = new URL(url);
    } catch {
      return finish('error');
    }
    get(first, 0);
  });
}
