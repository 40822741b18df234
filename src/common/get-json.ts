import { clientFetch } from './client-tls.js';

/** GET a JSON document; undefined when the service does not answer (not up yet, or gone). */
export async function getJson(url: string, timeoutMs = 2000, headers?: Record<string, string>): Promise<{ status: number; body: any } | undefined> {
  try {
    const res = await clientFetch(url, { signal: AbortSignal.timeout(timeoutMs), ...(headers ? { headers } : {}) });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, body };
  } catch {
    return undefined;
  }
}

/** `Authorization: Bearer` headers for getJson, or none without a token. */
export const bearer = (token: string | undefined): Record<string, string> | undefined => (token ? { authorization: `Bearer ${token}` } : undefined);
