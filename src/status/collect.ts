/**
 * What `infini-svc status` shows: one row per service, gathered from the services' own endpoints
 * (registry /health, /stats and /services; router /health and /stats; each babysitter's /info).
 * Nothing here throws for a service that does not answer: its row says `down`.
 */
import { describeState, toSitterInfo } from '../up/backend-watch.js';
import { getJson } from '../up/http.js';

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
  url: string;
  /** False when the service did not answer. */
  up: boolean;
}

/** Where to look: the registry, the router, and babysitters known besides the registry's records (a cluster file's). */
export interface StatusTargets {
  registryUrl: string;
  routerUrl: string;
  babysitters: Array<{ name: string; url: string }>;
}

const base = (url: string) => url.replace(/\/+$/, '');
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** The babysitters' own records (port+1) among a registry listing; the backends' records name a parent_service. */
export function babysitterRecords(listing: unknown): Array<{ name: string; url: string }> {
  const list: unknown[] = Array.isArray(listing) ? listing : Array.isArray((listing as any)?.services) ? (listing as any).services : [];
  const out: Array<{ name: string; url: string }> = [];
  for (const r of list) {
    if (typeof r !== 'object' || r === null) continue;
    const rec = r as Record<string, any>;
    const meta = (typeof rec.metadata === 'object' && rec.metadata) || {};
    if (meta.babysitter === undefined || meta.parent_service !== undefined) continue;
    if (typeof rec.name !== 'string' || typeof rec.url !== 'string') continue;
    out.push({ name: rec.name, url: rec.url });
  }
  return out;
}

export async function collectStatus(t: StatusTargets, timeoutMs = 2000): Promise<StatusRow[]> {
  const reg = base(t.registryUrl);
  const rtr = base(t.routerUrl);
  const [regHealth, regStats, listing, rtrHealth, rtrStats] = await Promise.all([
    getJson(`${reg}/health`, timeoutMs),
    getJson(`${reg}/stats`, timeoutMs),
    getJson(`${reg}/services`, timeoutMs),
    getJson(`${rtr}/health`, timeoutMs),
    getJson(`${rtr}/stats`, timeoutMs),
  ]);
  const rows: StatusRow[] = [];
  const regUp = regHealth?.status === 200;
  rows.push({ service: 'registry', kind: 'registry', state: regUp ? 'ready' : 'down', pid: regUp ? num(regStats?.body?.pid) : null, uptime_s: regUp ? num(regStats?.body?.uptime) : null, restarts: null, models: [], in_flight: null, url: reg, up: regUp });

  const rtrUp = rtrHealth?.status === 200;
  const backends: Array<Record<string, unknown>> = rtrUp && Array.isArray(rtrStats?.body?.services) ? rtrStats!.body.services.filter((s: unknown) => typeof s === 'object' && s !== null) : [];
  const routerModels = [...new Set(backends.flatMap((b) => strings(b.models)))].sort();
  rows.push({ service: 'router', kind: 'router', state: rtrUp ? 'ready' : 'down', pid: rtrUp ? num(rtrStats?.body?.pid) : null, uptime_s: rtrUp ? num(rtrStats?.body?.uptime) : null, restarts: null, models: routerModels, in_flight: rtrUp ? num(rtrStats?.body?.in_flight) : null, url: rtr, up: rtrUp });

  // the registry's records first, then any the cluster file names that the registry does not know
  const sitters = new Map<string, string>();
  for (const s of [...(regUp ? babysitterRecords(listing?.body) : []), ...t.babysitters]) if (!sitters.has(s.name)) sitters.set(s.name, base(s.url));
  const infos = await Promise.all([...sitters].map(async ([name, url]) => ({ name, url, body: (await getJson(`${url}/info`, timeoutMs))?.body })));
  for (const { name, url, body } of infos.sort((a, b) => a.name.localeCompare(b.name))) {
    const info = toSitterInfo(body);
    // the router knows the backend as `<babysitter>-server` (its record's parent_service is the babysitter)
    const backend = backends.find((b) => (b.metadata as any)?.parent_service === name || b.name === `${name}-server`);
    rows.push({
      service: name,
      kind: 'babysitter',
      state: info ? describeState(info) : 'down',
      pid: info ? num((body as any).pid) : null,
      uptime_s: info ? num((body as any).uptime) : null,
      restarts: info ? info.restart_count : null,
      models: info?.models ?? [],
      in_flight: backend ? num(backend.in_flight) : null,
      url,
      up: info !== undefined,
    });
  }
  return rows;
}
