import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { UsageError } from './command.js';

/**
 * The fetch that clients of the registry (and `status`) use. By default Node's own, which trusts
 * the usual roots plus NODE_EXTRA_CA_CERTS; after `trustCaFile`, https:// URLs go through
 * node:https with an agent that also trusts that file's CAs (Node 20's fetch takes no `ca`, and
 * undici, which could, is only a development dependency here).
 */
let current: (input: string | URL, init?: RequestInit) => Promise<Response> = (input, init) => globalThis.fetch(input, init);

export function clientFetch(input: string | URL, init?: RequestInit): Promise<Response> {
  return current(input, init);
}

/** Trust the CA certificates (PEM) in `file` for https:// URLs of clientFetch, on top of the usual ones. */
export function trustCaFile(file: string | undefined, flag = '--registry-ca'): void {
  if (file === undefined) return;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`${flag} ${file}: no PEM certificate in it`);
  // an explicit `ca` replaces Node's roots and NODE_EXTRA_CA_CERTS: keep both
  const ca = [...rootCertificates, pem];
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      ca.push(readFileSync(extra, 'utf8'));
    } catch {
      // Node itself warns about an unreadable NODE_EXTRA_CA_CERTS at start
    }
  }
  current = fetchTrusting(new Agent({ keepAlive: true, ca }));
}

/** Statuses whose Response may not have a body. */
const NULL_BODY = new Set([101, 204, 205, 304]);

/**
 * The part of fetch the clients here use (method, headers, a string body, signal; the answer's
 * status, headers and body stream), over node:https with `agent`. Failures reject as fetch's do:
 * a TypeError 'fetch failed' whose cause is the socket's or TLS's error.
 */
function fetchTrusting(agent: Agent): (input: string | URL, init?: RequestInit) => Promise<Response> {
  return (input, init = {}) => {
    const url = new URL(input);
    if (url.protocol !== 'https:') return globalThis.fetch(input, init);
    return new Promise((resolve, reject) => {
      const headers = Object.fromEntries(new Headers(init.headers));
      const req = request(url, { method: init.method ?? 'GET', headers, agent, signal: init.signal ?? undefined }, (res) => {
        try {
          const status = res.statusCode ?? 0;
          const out = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (Array.isArray(value)) for (const v of value) out.append(name, v);
            else if (value !== undefined) out.set(name, value);
          }
          if (NULL_BODY.has(status)) res.resume();
          const body = NULL_BODY.has(status) ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
          resolve(new Response(body, { status, statusText: res.statusMessage, headers: out }));
        } catch (err) {
          res.destroy();
          reject(new TypeError('fetch failed', { cause: err }));
        }
      });
      req.on('error', (err) => reject(err.name === 'AbortError' ? err : new TypeError('fetch failed', { cause: err })));
      const body = init.body;
      if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
        req.destroy();
        reject(new TypeError('fetchTrusting: only string and byte bodies'));
        return;
      }
      req.end(body ?? undefined);
    });
  };
}

/** A failed fetch's message with its cause ("fetch failed" alone hides the TLS or network error). */
export function fetchErrorText(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string } };
  const cause = e?.cause;
  if (cause === undefined || cause === null) return e?.message ?? String(err);
  const code = cause.code && !cause.message?.includes(cause.code) ? ` (${cause.code})` : '';
  return `${e.message}: ${cause.message}${code}`;
}
