import { clientFetch } from '../common/client-tls.js';
import type { Registration } from './record.js';

export type HeartbeatResult = 'ok' | 'not-found' | 'error';

const REQUEST_TIMEOUT_MS = 10_000;

/** Minimal client of the registry's mutating API, with the optional bearer token. */
export class RegistryClient {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly token?: string,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = {};
    if (json) h['content-type'] = 'application/json';
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return h;
  }

  private async call(method: string, path: string, body?: unknown): Promise<Response> {
    const res = await clientFetch(`${this.baseUrl}${path}`, {
      method,
      headers: this.headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    await res.body?.cancel().catch(() => undefined);
    return res;
  }

  /** Registers (or replaces) a record; throws with the status on refusal. */
  async register(reg: Registration): Promise<void> {
    const res = await this.call('POST', '/services', reg);
    if (res.status !== 201 && res.status !== 200) throw new Error(`registry answered ${res.status} to registration of '${reg.name}'`);
  }

  async heartbeat(name: string, status?: string): Promise<HeartbeatResult> {
    try {
      const res = await this.call('POST', `/services/${encodeURIComponent(name)}/heartbeat`, status === undefined ? undefined : { status });
      if (res.status === 404) return 'not-found';
      return res.ok ? 'ok' : 'error';
    } catch {
      return 'error';
    }
  }

  /** Deregisters; an unknown name counts as done. */
  async deregister(name: string): Promise<boolean> {
    try {
      const res = await this.call('DELETE', `/services/${encodeURIComponent(name)}`);
      return res.ok || res.status === 404;
    } catch {
      return false;
    }
  }
}
