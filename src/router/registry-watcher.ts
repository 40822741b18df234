import { clientFetch, fetchErrorText } from '../common/client-tls.js';
import type { Logger } from '../common/log.js';
import type { Backend, BackendSpec } from './backend.js';
import type { BackendSet } from './backend-set.js';

/** A registry record as the router reads it (only the fields it relies on). */
interface RecordLike {
  name?: unknown;
  host?: unknown;
  port?: unknown;
  url?: unknown;
  metadata?: unknown;
  is_healthy?: unknown;
  weight?: unknown;
}

interface FeedEvent {
  index: number;
  type: 'put' | 'delete' | 'health' | 'reset';
  service?: RecordLike;
}

export interface WatcherOptions {
  syncIntervalMs: number;
  graceMs: number;
  token?: string;
  log: Logger;
  /** Longest silence on the change feed before it counts as dead (default FEED_IDLE_MS). */
  feedIdleMs?: number;
}

/**
 * The registry writes a comment on its feed every 15 s; three missed ones mean a connection that
 * died without a close (a partition, a proxy's idle drop). Since a live feed is trusted as exact
 * membership, such a feed must not be trusted for long: it is dropped and the registry listed again.
 */
export const FEED_IDLE_MS = 45_000;

const LIST_TIMEOUT_MS = 10_000;
/** Backends new in one listing that are logged one by one; more make one summary line. */
const DISCOVERED_LINES = 20;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;

/** A registry record that the router routes to: `metadata.type == "openai-api"` with a usable address. */
function toSpec(r: RecordLike): BackendSpec | undefined {
  const meta = r.metadata;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return undefined;
  if ((meta as Record<string, unknown>).type !== 'openai-api') return undefined;
  if (typeof r.name !== 'string' || typeof r.host !== 'string' || typeof r.url !== 'string') return undefined;
  if (!Number.isInteger(r.port) || (r.port as number) < 1 || (r.port as number) > 65534) return undefined;
  try {
    new URL(r.url);
  } catch {
    return undefined;
  }
  const weight = Number.isInteger(r.weight) && (r.weight as number) >= 0 ? (r.weight as number) : 1;
  return { name: r.name, host: r.host, port: r.port as number, url: r.url, weight, metadata: meta as Record<string, unknown>, isStatic: false };
}

/** Discovery's state, as infini_router_registry_feed_state and /stats show it. */
export const FEED_STATES = ['connecting', 'connected', 'polling', 'stale'] as const;
export type FeedState = (typeof FEED_STATES)[number];

/**
 * Discovery from the registry. Follows the change feed (`GET /services` for a snapshot with its
 * index, then `GET /events?since=index`); a registry without one (the original) is detected once and
 * polled with `GET /services?healthy=true` every sync interval.
 *
 * What "seen" means: a live feed is exact membership (puts add, deletes remove at once; heartbeats
 * make no events and need none), so a backend followed by the feed never ages. Only a full listing
 * (the snapshot before following, a relist after a reset or reconnect, each poll) can show that a
 * backend is missing; it keeps its state for the grace period from the first listing that lacked
 * it, then is removed, unless a listing or event names it again. While the registry is
 * unreachable nothing is listed, so the last known list keeps serving however long the outage.
 * Static services (--static-services) are never touched; a record with `metadata.static = true` is
 * kept when listings lack it and removed when it is deregistered (see Backend.keptWhenUnlisted).
 */
export class RegistryWatcher {
  mode: 'feed' | 'poll' | 'unknown' = 'unknown';
  /** A change feed answered and is being read. */
  private following = false;
  /** Whether the last contact with the registry succeeded, so an outage is logged once. */
  private reachable: boolean | undefined = undefined;
  private stopped = false;
  private feedAbort: AbortController | undefined;
  /** Aborts a listing under way when discovery stops (a stop during start-up need not wait for it). */
  private readonly stopAbort = new AbortController();
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private readonly baseUrl: string;
  private loopDone: Promise<void> | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Backends a listing lacked (their missingSince is set), so that the grace check is not a scan of all. */
  private readonly missing = new Set<Backend>();

  constructor(
    baseUrl: string,
    private readonly backends: BackendSet,
    private readonly opts: WatcherOptions,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    backends.complete = false;
  }

  /**
   * Where discovery stands: `connected` (following the change feed), `polling` (a registry without a
   * feed, reachable), `stale` (unreachable: the last known list serves) or `connecting`.
   */
  get state(): FeedState {
    if (this.reachable === false) return 'stale';
    if (this.mode === 'poll' && this.reachable) return 'polling';
    if (this.following) return 'connected';
    return 'connecting';
  }

  /** Starts discovery; resolves after the first listing attempt so start-up can route at once. */
  async start(): Promise<void> {
    let firstDone!: () => void;
    const first = new Promise<void>((r) => (firstDone = r));
    this.loopDone = this.loop(firstDone);
    this.graceTimer = setInterval(() => this.removeVanished(Date.now()), Math.min(this.opts.syncIntervalMs, this.opts.graceMs, 10_000));
    this.graceTimer.unref();
    await first;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopAbort.abort();
    clearInterval(this.graceTimer);
    this.feedAbort?.abort();
    clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.loopDone;
  }

  private headers(): Record<string, string> {
    return this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {};
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }

  private async loop(firstDone: () => void): Promise<void> {
    let backoff = RETRY_MIN_MS;
    while (!this.stopped) {
      try {
        if (this.mode === 'poll') {
          await this.pollOnce();
          firstDone();
          await this.sleep(this.opts.syncIntervalMs);
          continue;
        }
        const index = await this.listAll(firstDone);
        if (index === undefined) {
          this.opts.log.info({ registry: this.baseUrl }, 'registry has no change feed; polling it');
          this.mode = 'poll';
          continue;
        }
        this.mode = 'feed';
        backoff = RETRY_MIN_MS;
        await this.follow(index);
      } catch (err) {
        if (this.stopped) break;
        if (this.reachable !== false) this.opts.log.warn({ registry: this.baseUrl, err: fetchErrorText(err) }, 'registry unreachable; serving the last known list');
        this.reachable = false;
        firstDone();
        await this.sleep(backoff);
        backoff = Math.min(RETRY_MAX_MS, backoff * 2);
      }
    }
    firstDone();
  }

  private async fetchJson(path: string): Promise<any> {
    const res = await clientFetch(`${this.baseUrl}${path}`, { headers: this.headers(), signal: AbortSignal.any([AbortSignal.timeout(LIST_TIMEOUT_MS), this.stopAbort.signal]) });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`registry answered ${res.status} to GET ${path}`);
    }
    return res.json();
  }

  /** The registry feed's epoch of the last listing: events are followed in that run of the feed only. */
  private epoch: string | undefined;

  /** Lists every record and reconciles; returns the feed index, or undefined if there is no feed. */
  private async listAll(firstDone: () => void): Promise<number | undefined> {
    const body = await this.fetchJson('/services');
    if (!body || !Array.isArray(body.services)) throw new Error('registry answered GET /services without a services array');
    this.reachable = true;
    if (!Number.isSafeInteger(body.index)) return undefined;
    this.epoch = typeof body.epoch === 'string' ? body.epoch : undefined;
    this.reconcile(body.services as RecordLike[], Date.now(), false);
    this.backends.complete = true;
    firstDone();
    return body.index as number;
  }

  private async pollOnce(): Promise<void> {
    const body = await this.fetchJson('/services?healthy=true');
    if (!body || !Array.isArray(body.services)) throw new Error('registry answered without a services array');
    this.reachable = true;
    this.reconcile(body.services as RecordLike[], Date.now(), true);
    this.backends.complete = true;
  }

  /**
   * Applies a full listing: listed services are upserted, missing ones start their grace period.
   * A poll lists healthy records only, so there a missing backend is also no longer routable;
   * a full listing may lack one the registry lost (a memory-only restart), which keeps serving.
   */
  private reconcile(records: RecordLike[], now: number, healthyOnly: boolean): void {
    const listed = new Set<string>();
    const discovered: Backend[] = [];
    for (const r of records) {
      if (typeof r.name === 'string') listed.add(r.name);
      this.apply(r, discovered);
    }
    // a line each for a few; one line for a fleet (10,000 lines would take longer than the listing)
    if (discovered.length > DISCOVERED_LINES) this.opts.log.info({ backends: discovered.length, first: discovered.slice(0, 5).map((b) => b.name) }, 'backends discovered');
    else for (const b of discovered) this.logDiscovered(b);
    for (const b of this.backends.all) {
      if (b.keptWhenUnlisted || listed.has(b.name)) continue;
      b.missingSince ??= now;
      this.missing.add(b);
      if (healthyOnly) b.listedHealthy = false;
    }
    this.removeVanished(now);
  }

  /** Upserts one record (or forgets it if it is not routable any more); new backends go to `discovered` or the log. */
  private apply(r: RecordLike, discovered?: Backend[]): void {
    const spec = toSpec(r);
    if (!spec) {
      if (typeof r.name === 'string') this.forget(r.name);
      return;
    }
    const existing = this.backends.get(spec.name);
    // a static service's description is the file's, whatever the registry says under its name
    if (existing?.isStatic) return;
    const b = this.backends.upsert(spec);
    b.listedHealthy = r.is_healthy === undefined ? true : r.is_healthy === true;
    b.missingSince = undefined;
    this.missing.delete(b);
    if (existing) return;
    if (discovered) discovered.push(b);
    else this.logDiscovered(b);
  }

  private logDiscovered(b: Backend): void {
    this.opts.log.info({ backend: b.name, url: b.url, models: b.models }, 'backend discovered');
  }

  /** Removes a backend the registry deregistered (or that stopped being routable) at once. */
  private forget(name: string): void {
    const b = this.backends.get(name);
    if (!b || b.isStatic) return;
    this.missing.delete(b);
    this.backends.remove(name, 'deregistered');
    this.opts.log.info({ backend: name }, 'backend removed');
  }

  /** Removes backends missing from listings for the whole grace period. */
  private removeVanished(now: number): void {
    for (const b of [...this.missing]) {
      if (this.backends.get(b.name) !== b || b.missingSince === undefined || b.keptWhenUnlisted) {
        this.missing.delete(b);
        continue;
      }
      if (now - b.missingSince < this.opts.graceMs) continue;
      this.missing.delete(b);
      this.backends.remove(b.name, 'missing from the registry');
      this.opts.log.info({ backend: b.name, absent_s: Math.round((now - b.missingSince) / 1000) }, 'backend removed after grace period');
    }
  }

  /** Consumes the change feed until it ends, fails or asks for a reset. */
  private async follow(since: number): Promise<void> {
    const abort = (this.feedAbort = new AbortController());
    const idleMs = this.opts.feedIdleMs ?? FEED_IDLE_MS;
    let idle: NodeJS.Timeout | undefined;
    const quiet = () => {
      clearTimeout(idle);
      idle = setTimeout(() => abort.abort(new Error(`registry change feed silent for ${idleMs / 1000} s`)), idleMs);
      idle.unref();
    };
    quiet();
    try {
      await this.read(since, abort, quiet);
    } finally {
      this.following = false;
      clearTimeout(idle);
    }
  }

  /** Reads the feed; `quiet()` is called at every byte received (the silence timer restarts). */
  private async read(since: number, abort: AbortController, quiet: () => void): Promise<void> {
    const epoch = this.epoch !== undefined ? `&epoch=${encodeURIComponent(this.epoch)}` : '';
    const res = await clientFetch(`${this.baseUrl}/events?since=${since}${epoch}`, { headers: { ...this.headers(), accept: 'text/event-stream' }, signal: abort.signal });
    if (res.status === 404 || res.status === 405) {
      await res.body?.cancel().catch(() => undefined);
      this.mode = 'poll';
      return;
    }
    if (!res.ok || !res.body) throw new Error(`registry answered ${res.status} to GET /events`);
    this.following = true;
    this.opts.log.debug({ registry: this.baseUrl, since }, 'following the registry change feed');
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      quiet();
      buffer += decoder.decode(chunk, { stream: true });
      let sep: number;
      while ((sep = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, sep);
        buffer = buffer.slice(sep + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trimStart())
          .join('\n');
        if (!data) continue;
        let event: FeedEvent;
        try {
          event = JSON.parse(data) as FeedEvent;
        } catch {
          continue;
        }
        if (event.type === 'reset') {
          abort.abort();
          return;
        }
        this.onEvent(event);
      }
    }
    throw new Error('registry change feed closed');
  }

  private onEvent(event: FeedEvent): void {
    const r = event.service;
    if (!r || typeof r.name !== 'string') return;
    if (event.type === 'delete') this.forget(r.name);
    else this.apply(r);
  }
}
