/**
 * What `infini-svc status` shows: one row per service, gathered from the services' own endpoints
 * (registry /health, /stats and /services; router /health, /stats and /dashboard/api/traffic; each
 * babysitter's /info). Nothing here throws for a service that does not answer: its row says `down`.
 */
import { bearer, getJson } from '../common/get-json.js';
import { babysitterRecords, fetchSitters, parentOf, trimSlash, uniqueTargets, type SitterTarget } from '../babysitter/cluster-view.js';

export { babysitterRecords };

export interface StatusRow {
  service: string;
  kind: 'registry' | 'router' | 'babysitter';
  /** `ready`, `down`, or a babysitter's backend state with why (`backoff (crashed: exit 1, ...)`). */
  state: string;
  /** The backend engine's PID for a babysitter; null when unknown. */
  pid: number | null;
  uptime_s: number | null;
  restarts: number | null;
  models: string[];
  in_flight: number | null;
  /** The router's row only: requests waiting for a backend with room (every backend of their model at its limit). */
  queued?: number | null;
  /** Requests per second over the router's last minute: the backend's, or the whole router's. */
  req_s: number | null;
  /** Median time to first token over the router's last minute (ms); null without requests. */
  ttft_p50_ms: number | null;
  url: string;
  /** False when the service did not answer. */
  up: boolean;
}

/** Where to look: the registry, the router, and babysitters known besides the registry's records (a cluster file's). */
export interface StatusTargets {
  registryUrl: string;
  routerUrl: string;
  babysitters: SitterTarget[];
  /** Sent to the router (Bearer) when it requires API keys. */
  apiKey?: string;
}

/** Babysitters asked at once. */
const CONCURRENCY = 32;

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const record = (v: unknown): Record<string, any> => (typeof v === 'object' && v !== null ? (v as Record<string, any>) : {});

export async function collectStatus(t: StatusTargets, timeoutMs = 2000): Promise<StatusRow[]> {
  const reg = trimSlash(t.registryUrl);
  const rtr = trimSlash(t.routerUrl);
  const auth = bearer(t.apiKey);
  const [regHealth, regStats, listing, rtrHealth, rtrStats, rtrTraffic] = await Promise.all([
    getJson(`${reg}/health`, timeoutMs),
    getJson(`${reg}/stats`, timeoutMs),
    getJson(`${reg}/services`, timeoutMs),
    getJson(`${rtr}/health`, timeoutMs),
    getJson(`${rtr}/stats`, timeoutMs, auth),
    getJson(`${rtr}/dashboard/api/traffic`, timeoutMs, auth),
  ]);
  const rows: StatusRow[] = [];
  const regUp = regHealth?.status === 200;
  rows.push({ service: 'registry', kind: 'registry', state: regUp ? 'ready' : 'down', pid: regUp ? num(regStats?.body?.pid) : null, uptime_s: regUp ? num(regStats?.body?.uptime) : null, restarts: null, models: [], in_flight: null, req_s: null, ttft_p50_ms: null, url: reg, up: regUp });

  const rtrUp = rtrHealth?.status === 200;
  const backends: Array<Record<string, unknown>> = rtrUp && Array.isArray(rtrStats?.body?.services) ? rtrStats!.body.services.filter((s: unknown) => typeof s === 'object' && s !== null) : [];
  const routerModels = [...new Set(backends.flatMap((b) => strings(b.models)))].sort();
  // a router without the dashboard (an older one) leaves these columns empty
  const traffic = rtrUp && rtrTraffic?.status === 200 ? record(rtrTraffic.body) : {};
  const figures = new Map<string, Record<string, unknown>>();
  for (const f of Array.isArray(traffic.backends) ? traffic.backends : []) if (typeof f?.backend === 'string') figures.set(f.backend, f);
  const total = record(traffic.total);
  // a router with API keys answers its details only to an admin key: say what is missing
  const denied = rtrStats?.status === 401 ? ' (needs --api-key)' : rtrStats?.status === 403 ? ' (--api-key is not an admin key)' : '';
  // every worker's requests (a worker's /stats counts only its own); waiting ones are part of the state
  const inFlight = num(traffic.in_flight) ?? (rtrUp ? num(rtrStats?.body?.in_flight) : null);
  const queued = num(traffic.queued) ?? 0;
  const state = rtrUp ? `ready${queued > 0 ? `, ${queued} waiting` : ''}${denied}` : 'down';
  rows.push({ service: 'router', kind: 'router', state, pid: rtrUp ? num(rtrStats?.body?.pid) : null, uptime_s: rtrUp ? num(rtrStats?.body?.uptime) : null, restarts: null, models: routerModels, in_flight: inFlight, queued: rtrUp ? queued : null, req_s: num(total.req_s), ttft_p50_ms: num(total.ttft_p50_ms), url: rtr, up: rtrUp });

  // the router knows a babysitter's backend as `<babysitter>-server` (its record's parent_service is the babysitter)
  const backendOf = new Map<string, Record<string, unknown>>();
  for (const b of backends) {
    const parent = parentOf(b.metadata);
    if (parent !== undefined && !backendOf.has(parent)) backendOf.set(parent, b);
  }
  for (const b of backends) {
    const sitter = typeof b.name === 'string' && b.name.endsWith('-server') ? b.name.slice(0, -'-server'.length) : undefined;
    if (sitter !== undefined && !backendOf.has(sitter)) backendOf.set(sitter, b);
  }
  // the registry's records first, then any the cluster file names that the registry does not know
  const sitters = await fetchSitters(uniqueTargets(regUp ? babysitterRecords(listing?.body) : [], t.babysitters), { timeoutMs, concurrency: CONCURRENCY });
  for (const s of sitters.sort((a, b) => a.name.localeCompare(b.name))) {
    const backend = backendOf.get(s.name);
    const f = figures.get(typeof backend?.name === 'string' ? backend.name : `${s.name}-server`);
    rows.push({
      service: s.name,
      kind: 'babysitter',
      state: s.state,
      pid: s.pid,
      uptime_s: s.uptime_s,
      restarts: s.restarts,
      models: s.models,
      in_flight: backend ? num(backend.in_flight) : null,
      req_s: f ? num(f.req_s) : null,
      ttft_p50_ms: f ? num(f.ttft_p50_ms) : null,
      url: s.url,
      up: s.up,
    });
  }
  return rows;
}
