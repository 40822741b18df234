import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TlsOptions } from 'node:tls';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { checkBearer } from '../common/auth.js';
import { Admission } from './admission.js';
import { refusedAddress } from './address-check.js';
import { BodyTooLargeError, isPlainObject, parseJsonBody, readBody, sendError, sendJson } from '../common/http-json.js';
import type { Logger } from '../common/log.js';
import { rfc3339 } from '../common/time.js';
import { sseFrame, type ChangeEvent } from './change-feed.js';
import type { HealthProber } from './health-prober.js';
import { ListingCache } from './listing-cache.js';
import { newRegistryCounters, RegistryMetrics, type RegistryCounters } from './metrics.js';
import { PrometheusTargets } from './prometheus-targets.js';
import { validateRegistration, validateUpdate, type ServiceRecord } from './record.js';
import { StateWriteError, type StateFile } from './state-file.js';
import type { ServiceStore } from './store.js';

export const BODY_LIMIT = 1024 * 1024;
const SSE_PING_MS = 15_000;
/** Sampling interval of the event-loop delay reported by /stats. */
const LOOP_DELAY_RESOLUTION_MS = 10;

export interface RegistryServerOptions {
  store: ServiceStore;
  prober: HealthProber;
  authToken?: string;
  log: Logger;
  now?: () => number;
  /** Event counts shared with the stale reaper (evictions); fresh ones by default. */
  counters?: RegistryCounters;
  /** Its state file, for the write-duration histogram. */
  stateFile?: StateFile;
  /** Address guard, record cap and rate limits (admission.ts); the defaults when absent. */
  admission?: Admission;
  /** Serve HTTPS with these options (tls-files.ts); the same handler. */
  tls?: TlsOptions;
}

type Handler = (req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams) => Promise<void>;
type Route = Partial<Record<string, Handler>>;

/** The registry's HTTP API (§1.4 of the original, plus the change feed). */
export class RegistryServer {
  readonly server: Server;
  private readonly startedMs: number;
  private readonly streams = new Set<ServerResponse>();
  private readonly now: () => number;
  private readonly listings: ListingCache;
  private readonly targets: PrometheusTargets;
  private readonly counters: RegistryCounters;
  private readonly metrics: RegistryMetrics;
  /** Event-loop delay since start, for /stats (10 ms resolution: stalls, not scheduling noise). */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  /** /stats distributions, recomputed when the feed index moves. */
  /** New names being saved right now (the record cap counts them). */
  private registering = 0;
  private distributions: { index: number; epoch: string; status: Record<string, number>; host: Record<string, number> } | undefined;

  constructor(private readonly opts: RegistryServerOptions) {
    this.now = opts.now ?? Date.now;
    this.startedMs = this.now();
    this.listings = new ListingCache(opts.store, this.now);
    this.targets = new PrometheusTargets(opts.store);
    this.counters = opts.counters ?? newRegistryCounters();
    this.metrics = new RegistryMetrics({ store: opts.store, prober: opts.prober, counters: this.counters, subscribers: () => this.streams.size, stateFile: opts.stateFile, refused: opts.admission?.refused });
    this.loopDelay.enable();
    const serverOpts = { keepAliveTimeout: 65_000, headersTimeout: 66_000 };
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    // https.Server is an http.Server on TLS sockets: the same API for everything here
    this.server = opts.tls ? (createHttpsServer({ ...serverOpts, ...opts.tls }, handler) as unknown as Server) : createServer(serverOpts, handler);
  }

  /** Stops accepting, ends open change-feed streams and waits for in-flight requests. */
  async close(): Promise<void> {
    this.loopDelay.disable();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const res of this.streams) res.end();
    this.server.closeIdleConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    let path = q === -1 ? url : url.slice(0, q);
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    try {
      const [route, name] = this.route(path);
      if (!route) return sendError(res, 404, `no such endpoint: ${req.method} ${path}`);
      const handler = route[method];
      if (!handler) {
        const allow = Object.keys(route).join(', ');
        return sendError(res, 405, `method ${req.method} not allowed on ${path} (allowed: ${allow})`, { allow });
      }
      const throttled = handler === this.health ? undefined : this.opts.admission?.charge(req, handler === this.heartbeat);
      if (throttled) {
        req.resume();
        return sendError(res, 429, throttled.message, { 'retry-after': String(throttled.retryAfterS) });
      }
      await handler(req, res, name, query);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return sendError(res, 413, err.message, { connection: 'close' });
      // The change was refused as a whole (memory unchanged), so a retry is safe.
      if (err instanceof StateWriteError) return sendError(res, 503, `the registry could not save its state (${err.code}); the change was not applied, retry later`, { 'retry-after': '1' });
      this.opts.log.error({ err, method: req.method, path }, 'request failed');
      if (!res.headersSent) sendError(res, 500, 'internal error');
      else res.destroy();
    }
  }

  private route(path: string): [Route | undefined, string] {
    switch (path) {
      case '/health':
        return [{ GET: this.health }, ''];
      case '/services':
        return [{ GET: this.listServices, POST: this.register }, ''];
      case '/stats':
        return [{ GET: this.stats }, ''];
      case '/events':
        return [{ GET: this.events }, ''];
      case '/metrics':
        return [{ GET: this.metricsText }, ''];
      case '/prometheus/targets':
        return [{ GET: this.prometheusTargets }, ''];
    }
    const m = /^\/services\/([^/]+)(\/health|\/heartbeat)?$/.exec(path);
    if (!m) return [undefined, ''];
    let name: string;
    try {
      name = decodeURIComponent(m[1]!);
    } catch {
      return [undefined, ''];
    }
    if (m[2] === '/health') return [{ GET: this.probeService }, name];
    if (m[2] === '/heartbeat') return [{ POST: this.heartbeat }, name];
    return [{ GET: this.getService, PUT: this.updateService, DELETE: this.deleteService }, name];
  }

  private view(rec: ServiceRecord) {
    return this.opts.store.view(rec);
  }

  /** Mutating calls need the bearer token when one is configured: 401 without, 403 wrong. */
  private authorized(req: IncomingMessage, res: ServerResponse): boolean {
    const result = checkBearer(req, this.opts.authToken);
    if (result === 'ok') return true;
    if (result === 'missing') sendError(res, 401, 'missing Authorization: Bearer token', { 'www-authenticate': 'Bearer' });
    else sendError(res, 403, 'invalid bearer token');
    req.resume();
    return false;
  }

  /** Reads and parses a JSON body; answers 400 itself and returns undefined on bad JSON. */
  private async jsonBody(req: IncomingMessage, res: ServerResponse): Promise<{ value: unknown } | undefined> {
    const parsed = parseJsonBody(await readBody(req, BODY_LIMIT));
    if (!parsed.ok) {
      sendError(res, 400, parsed.error);
      return undefined;
    }
    return { value: parsed.value };
  }

  /** Answers 400 (counted, logged with the client) when a registration or update points where the guard refuses. */
  private refuseAddress(req: IncomingMessage, res: ServerResponse, service: string, value: Parameters<typeof refusedAddress>[1]): boolean {
    const admission = this.opts.admission;
    const refused = admission && refusedAddress(admission.guard, value);
    if (!refused) return false;
    admission!.refused.address++;
    this.opts.log.warn({ service, client: req.socket.remoteAddress, reason: refused }, 'registration refused: service address');
    sendError(res, 400, refused);
    return true;
  }

  private notFound(res: ServerResponse, name: string): void {
    sendError(res, 404, `Service '${name}' not found`);
  }

  private health: Handler = async (_req, res) => {
    this.opts.store.evaluateHealth();
    const { total, healthy } = this.opts.store.counts();
    sendJson(res, 200, {
      status: 'healthy',
      registry: 'running',
      registered_services: total,
      healthy_services: healthy,
      timestamp: rfc3339(this.now()),
    });
  };

  /** Served from the listing cache (listing-cache.ts): exact but for last_heartbeat up to 1 s old. */
  private listServices: Handler = async (_req, res, _name, query) => {
    const healthy = query.get('healthy');
    // An empty `healthy=` is ignored (the Rust original treated it as "false").
    const want = healthy !== null && healthy !== '' ? healthy.toLowerCase() === 'true' : undefined;
    const body = await this.listings.body(query.get('status'), want);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    for (const chunk of body.chunks) res.write(chunk);
    res.end();
  };

  /** Prometheus http_sd (prometheus-targets.ts); open like the other reads. */
  private prometheusTargets: Handler = async (_req, res) => {
    const body = await this.targets.body();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    for (const chunk of body.chunks) res.write(chunk);
    res.end();
  };

  private register: Handler = async (req, res) => {
    if (!this.authorized(req, res)) return;
    const body = await this.jsonBody(req, res);
    if (!body) return;
    const checked = validateRegistration(body.value);
    if (!checked.ok) return sendError(res, 400, checked.error);
    if (this.refuseAddress(req, res, checked.value.name, checked.value)) return;
    const admission = this.opts.admission;
    let reserved = false;
    if (admission) {
      // a re-registration replaces its record: only new names count against the cap, those still being saved included
      if (!this.opts.store.all().has(checked.value.name)) {
        if (this.opts.store.counts().total + this.registering >= admission.maxServices) {
          admission.refused.max_services++;
          return sendError(res, 429, `the registry holds its maximum of ${admission.maxServices} services (--max-services); '${checked.value.name}' was not registered`, { 'retry-after': '30' });
        }
        reserved = true;
        this.registering++;
      }
    }
    let rec: ServiceRecord;
    try {
      rec = await this.opts.store.put(checked.value);
    } finally {
      if (reserved) this.registering--;
    }
    this.counters.registrations++;
    this.opts.log.info({ service: rec.name, url: rec.url, type: rec.metadata.type }, 'service registered');
    sendJson(res, 201, { message: `Service '${rec.name}' registered successfully`, service: this.view(rec) });
  };

  private getService: Handler = async (_req, res, name) => {
    const rec = await this.opts.store.get(name);
    if (!rec) return this.notFound(res, name);
    sendJson(res, 200, this.view(rec));
  };

  private updateService: Handler = async (req, res, name) => {
    if (!this.authorized(req, res)) return;
    const raw = await readBody(req, BODY_LIMIT);
    if (!(await this.opts.store.get(name))) return this.notFound(res, name);
    if (raw.length === 0) return sendError(res, 400, 'request body must be a JSON object (send {} to only refresh the heartbeat)');
    const parsed = parseJsonBody(raw);
    if (!parsed.ok) return sendError(res, 400, parsed.error);
    const checked = validateUpdate(parsed.value, name);
    if (!checked.ok) return sendError(res, 400, checked.error);
    if (this.refuseAddress(req, res, name, checked.value)) return;
    const rec = await this.opts.store.update(name, checked.value, { heartbeat: true });
    if (!rec) return this.notFound(res, name);
    sendJson(res, 200, { message: `Service '${name}' updated successfully`, service: this.view(rec) });
  };

  private deleteService: Handler = async (req, res, name) => {
    if (!this.authorized(req, res)) return;
    const rec = await this.opts.store.delete(name);
    if (!rec) return this.notFound(res, name);
    this.counters.deregistrations++;
    this.opts.log.info({ service: name }, 'service unregistered');
    sendJson(res, 200, { message: `Service '${name}' unregistered successfully` });
  };

  /** On-demand probe: updates health_status only (it no longer refreshes last_heartbeat). */
  private probeService: Handler = async (_req, res, name) => {
    const rec = await this.opts.store.get(name);
    if (!rec) return this.notFound(res, name);
    const updated = (await this.opts.prober.probeOne(rec)) ?? rec;
    const view = this.view(updated);
    sendJson(res, 200, {
      service: name,
      health_status: view.health_status,
      is_healthy: view.is_healthy,
      last_heartbeat: view.last_heartbeat,
      timestamp: rfc3339(this.now()),
    });
  };

  /** Body optional; a JSON object's string `status` updates the status; other bodies are ignored. */
  private heartbeat: Handler = async (req, res, name) => {
    if (!this.authorized(req, res)) return;
    const raw = await readBody(req, BODY_LIMIT);
    let status: string | undefined;
    if (raw.length > 0) {
      const parsed = parseJsonBody(raw);
      if (parsed.ok && isPlainObject(parsed.value) && parsed.value.status !== undefined) {
        if (typeof parsed.value.status !== 'string') return sendError(res, 400, "field 'status' must be a string");
        status = parsed.value.status;
      }
    }
    const rec = await this.opts.store.touch(name, status);
    if (!rec) return this.notFound(res, name);
    this.counters.heartbeats++;
    sendJson(res, 200, { message: 'Heartbeat received', timestamp: rfc3339(this.now()) });
  };

  /** Prometheus text format (metrics.ts). */
  private metricsText: Handler = async (_req, res) => {
    const body = await this.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': this.metrics.registry.contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  private stats: Handler = async (_req, res) => {
    const store = this.opts.store;
    store.evaluateHealth();
    const { total, healthy } = store.counts();
    const { index, epoch } = store.position();
    if (this.distributions?.index !== index || this.distributions.epoch !== epoch) {
      const status: Record<string, number> = {};
      const host: Record<string, number> = {};
      for (const s of store.all().values()) {
        status[s.status] = (status[s.status] ?? 0) + 1;
        host[s.host] = (host[s.host] ?? 0) + 1;
      }
      this.distributions = { index, epoch, status, host };
    }
    const now = this.now();
    // The histogram records whole intervals between samples: the delay is what exceeds the resolution.
    const ms = (ns: number) => (Number.isFinite(ns) ? Math.max(0, Math.round((ns - LOOP_DELAY_RESOLUTION_MS * 1e6) / 1e4) / 100) : 0);
    sendJson(res, 200, {
      total_services: total,
      healthy_services: healthy,
      unhealthy_services: total - healthy,
      status_distribution: this.distributions.status,
      host_distribution: this.distributions.host,
      uptime: Math.floor((now - this.startedMs) / 1000),
      pid: process.pid,
      probes: this.opts.prober.stats(),
      timestamp: rfc3339(now),
      process: {
        rss_bytes: process.memoryUsage.rss(),
        event_loop_delay_ms: { p50: ms(this.loopDelay.percentile(50)), p99: ms(this.loopDelay.percentile(99)), max: ms(this.loopDelay.max) },
      },
      state_file: { ...(store.stateCounters() ?? { writes: 0, bytes_written: 0, compactions: 0 }) },
    });
  };

  /**
   * Change feed as Server-Sent Events: `id: <index>` and `data: {"index","type","service"}` per
   * change. `since` (or Last-Event-ID) replays the backlog after that index; a `since` outside the
   * backlog, or with an `epoch` other than this run's (see ChangeFeed), gets
   * `{"type":"reset","index":N}` first, telling the client to list again.
   */
  private events: Handler = async (req, res, _name, query) => {
    const sinceText = query.get('since') ?? (req.headers['last-event-id'] as string | undefined);
    let since: number | undefined;
    if (sinceText !== undefined && sinceText !== null && sinceText !== '') {
      since = Number(sinceText);
      if (!Number.isSafeInteger(since) || since < 0) return sendError(res, 400, `query parameter 'since' must be a non-negative integer, got '${sinceText}'`);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const send = (e: ChangeEvent) => res.write(sseFrame(e));
    const pending: ChangeEvent[] = [];
    let live = false;
    const watch = this.opts.store.watch(since, (e) => (live ? send(e) : pending.push(e)), query.get('epoch') ?? undefined);
    if (watch.backlog === 'reset') res.write(`id: ${watch.index}\ndata: ${JSON.stringify({ index: watch.index, type: 'reset' })}\n\n`);
    else for (const e of watch.backlog) send(e);
    for (const e of pending) send(e);
    live = true;
    res.write(`: connected at index ${watch.index}\n\n`);
    this.streams.add(res);
    const ping = setInterval(() => res.write(': ping\n\n'), SSE_PING_MS);
    res.on('close', () => {
      clearInterval(ping);
      watch.unsubscribe();
      this.streams.delete(res);
    });
  };
}
