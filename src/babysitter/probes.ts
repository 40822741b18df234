/**
 * HTTP probes of the supervised backend at `base` (`http://127.0.0.1:P`, or its bind address when
 * that is a specific one), always bounded by a timeout.
 */
import { is2xx, probeStatus } from '../common/http-probe.js';

export interface ModelObject {
  id: string;
  [key: string]: unknown;
}

/** The model list as an array of objects: `{"data": [...]}` or a bare array; undefined if unavailable. */
export async function fetchModels(base: string, timeoutMs: number): Promise<ModelObject[] | undefined> {
  for (const path of ['/v1/models', '/models']) {
    try {
      const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        continue;
      }
      const body = (await res.json()) as unknown;
      const list = Array.isArray(body) ? body : Array.isArray((body as { data?: unknown })?.data) ? (body as { data: unknown[] }).data : undefined;
      if (!list) continue;
      return list
        .map((m) => (typeof m === 'string' ? { id: m } : m))
        .filter((m): m is ModelObject => typeof m === 'object' && m !== null && typeof (m as ModelObject).id === 'string');
    } catch {
      // try the next path
    }
  }
  return undefined;
}

/** Declared model ids as OpenAI model objects (for backends without a models endpoint). */
export function declaredModels(ids: string[]): ModelObject[] {
  const created = Math.floor(Date.now() / 1000);
  return ids.map((id) => ({ id, object: 'model', created, owned_by: 'infini-svc' }));
}

/**
 * Ready: the models list is non-empty; for a backend that declares its models, `/health` answering
 * 200 is enough. Returns the models to register, or undefined while not ready.
 */
export async function probeReady(base: string, declared: string[] | undefined, timeoutMs: number): Promise<ModelObject[] | undefined> {
  if (declared && declared.length > 0) {
    const status = await probeStatus(`${base}/health`, timeoutMs);
    if (status === 200) return declaredModels(declared);
    if (status !== 404) return undefined;
  }
  const models = await fetchModels(base, timeoutMs);
  if (!models || models.length === 0) return undefined;
  return declared && declared.length > 0 ? declaredModels(declared) : models;
}

/**
 * Alive (and, while ready, routable): `/health` answers 2xx; where there is no `/health` (404), the
 * models list answers. Returns undefined when healthy, else what went wrong.
 */
export async function healthProblem(base: string, timeoutMs: number): Promise<string | undefined> {
  const status = await probeStatus(`${base}/health`, timeoutMs);
  if (is2xx(status)) return undefined;
  if (status === 404) return (await fetchModels(base, timeoutMs)) !== undefined ? undefined : 'no /health and no models list';
  if (status === 'refused') return 'health probe refused (nothing listens)';
  if (status === 'error') return `health probe got no answer within ${timeoutMs / 1000} s`;
  return `health probe answered ${status}`;
}

export async function probeLive(base: string, timeoutMs: number): Promise<boolean> {
  return (await healthProblem(base, timeoutMs)) === undefined;
}
