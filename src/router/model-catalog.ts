import type { Backend } from './backend.js';

export interface ModelObject {
  id: string;
  [key: string]: unknown;
}

/**
 * The aggregated model list of `/models` and `/v1/models`: each routable backend's
 * `metadata.models_list` objects (or `{id}` objects from `metadata.models`), de-duplicated by id
 * (first wins) and sorted by id.
 */
export function aggregateModels(backends: readonly Backend[], now: number, created: number): ModelObject[] {
  const seen = new Map<string, ModelObject>();
  for (const b of backends) {
    if (!b.routable(now)) continue;
    const list = b.metadata.models_list;
    const objects: ModelObject[] = [];
    if (Array.isArray(list) && list.length > 0) {
      for (const m of list) if (typeof m === 'object' && m !== null && typeof (m as ModelObject).id === 'string') objects.push(m as ModelObject);
    } else {
      for (const id of b.models) objects.push({ id, object: 'model', created, owned_by: 'infini-svc' });
    }
    for (const m of objects) if (!seen.has(m.id)) seen.set(m.id, m);
  }
  return [...seen.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
