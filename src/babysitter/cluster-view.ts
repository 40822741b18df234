/**
 * The cluster as its babysitters describe it: which babysitters there are (the registry's records,
 * a cluster file, the router's backends) and what each one's /info says. Shared by
 * `infini-svc status` and the router's dashboard. Nothing here throws for a service that does not
 * answer: it shows as down.
 */
import { describeState, toSitterInfo, type SitterInfo } from './info.js';
import { getJson } from '../common/get-json.js';

export interface SitterTarget {
  name: string;
  /** The babysitter's own URL (backend port + 1). */
  url: string;
}

export interface SitterView {
  name: string;
  url: string;
  /** False when /info did not answer. */
  up: boolean;
  /** `down`, or the backend's state with why (`backoff (crashed: exit 1, restart 2 in 4 s)`). */
  state: string;
  info: SitterInfo | undefined;
  /** The engine's PID. */
  pid: number | null;
  /** Since the engine was last started (null when none runs), beside its pid and restarts. */
  uptime_s: number | null;
  restarts: number | null;
  models: string[];
}

export const trimSlash = (url: string): string => url.replace(/\/+$/, '');
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The babysitters' own records (port+1) among a registry listing; the backends' records name a parent_service. */
export function babysitterRecords(listing: unknown): SitterTarget[] {
  const list: unknown[] = Array.isArray(listing) ? listing : Array.isArray((listing as any)?.services) ? (listing as any).services : [];
  const out: SitterTarget[] = [];
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

/** The babysitter that runs a backend, from the backend's record: its parent_service. */
export function parentOf(metadata: unknown): string | undefined {
  const p = typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>).parent_service : undefined;
  return typeof p === 'string' && p !== '' ? p : undefined;
}

/** One list of babysitters by name, the first list naming one winning. */
export function uniqueTargets(...lists: ReadonlyArray<readonly SitterTarget[]>): SitterTarget[] {
  const byName = new Map<string, string>();
  for (const list of lists) for (const s of list) if (!byName.has(s.name)) byName.set(s.name, trimSlash(s.url));
  return [...byName].map(([name, url]) => ({ name, url }));
}

/** `fn` over `items` with at most `limit` running at once; results in the order of `items`. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Reads one babysitter's /info into a view (down when it does not answer sensibly). */
export function sitterView(target: SitterTarget, body: unknown): SitterView {
  const info = toSitterInfo(body);
  const b = (info ? body : {}) as Record<string, unknown>;
  return {
    name: target.name,
    url: trimSlash(target.url),
    up: info !== undefined,
    state: info ? describeState(info) : 'down',
    info,
    pid: num(b.pid),
    // a babysitter older than `backend_uptime` has only its own uptime
    uptime_s: 'backend_uptime' in b ? num(b.backend_uptime) : num(b.uptime),
    restarts: info ? info.restart_count : null,
    models: info?.models ?? [],
  };
}

/** Every babysitter's /info, `concurrency` at a time, each bounded by `timeoutMs`. */
export function fetchSitters(targets: readonly SitterTarget[], opts: { timeoutMs: number; concurrency: number }): Promise<SitterView[]> {
  return mapLimit(targets, opts.concurrency, async (t) => sitterView(t, (await getJson(`${trimSlash(t.url)}/info`, opts.timeoutMs))?.body));
}
