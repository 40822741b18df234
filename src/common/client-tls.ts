import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { UsageError } from './command.js';

/**
 * The fetch that clients of the registry (and `status`) use. By default Node's own, which trusts
 * the usual roots plus NODE_EXTRA_CA_CERTS; after `trustCaFile` one that also trusts that file's
 * CAs. Node's fetch takes no `ca`, so the CA case uses undici's fetch with an Agent of its own
 * (undici is what Node's fetch is made of), loaded only then.
 */
let current: (input: string | URL, init?: RequestInit) => Promise<Response> = (input, init) => globalThis.fetch(input, init);

export function clientFetch(input: string | URL, init?: RequestInit): Promise<Response> {
  return current(input, init);
}

/** Trust the CA certificates (PEM) in `file` for https:// URLs of clientFetch, on top of the usual ones. */
export async function trustCaFile(file: string | undefined, flag = '--registry-ca'): Promise<void> {
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
  const undici = await import('undici');
  const dispatcher = new undici.Agent({ connect: { ca } });
  current = (input, init) => undici.fetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>;
}

/** A failed fetch's message with its cause ("fetch failed" alone hides the TLS or network error). */
export function fetchErrorText(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string } };
  const cause = e?.cause;
  if (cause === undefined || cause === null) return e?.message ?? String(err);
  const code = cause.code && !cause.message?.includes(cause.code) ? ` (${cause.code})` : '';
  return `${e.message}: ${cause.message}${code}`;
}
