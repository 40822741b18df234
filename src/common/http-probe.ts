import { request as httpRequest, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

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

/**
 * The health checks of the registry's prober and the router's checker: a GET for the status only,
 * on a connection of its own that is closed as soon as the status line arrives (no keep-alive
 * sockets left open per target: at 50,000 targets that exhausts file descriptors), following
 * redirects as fetch did. The timeout runs from when this call starts. Never throws.
 */
export function checkHttp(url: string, timeoutMs: number): Promise<CheckStatus> {
  return new Promise((resolve) => {
    let settled = false;
    let current: ClientRequest | undefined;
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
      let req: ClientRequest;
      try {
        req = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, { agent: false, headers: { connection: 'close' } });
      } catch {
        return finish('error');
      }
      current = req;
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (current === req) finish(err.code === 'ECONNREFUSED' ? 'refused' : 'error');
      });
      req.on('response', (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (!REDIRECTS.has(status) || !location || redirects >= MAX_REDIRECTS) return finish(status);
        let next: URL;
        try {
          next = new URL(location, target);
        } catch {
          return finish(status);
        }
        req.destroy();
        get(next, redirects + 1);
      });
      req.end();
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
