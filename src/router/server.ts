import type { Server } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { sendJson } from '../common/http-json.js';
import type { Http1Response } from '../common/http1/response.js';
import { Http1Server, type Http1Request } from '../common/http1/server.js';
import type { Logger } from '../common/log.js';
import type { ProbeStats } from '../common/probe-scheduler.js';
import type { AccessGate } from './access/gate.js';
import type { BackendSet } from './backend-set.js';
import { Dashboard } from './dashboard.js';
import { routerError, type RouterErrors } from './errors.js';
import type { RouterMetrics } from './metrics.js';
import { aggregateModels } from './model-catalog.js';
import { RecentErrors } from './recent-errors.js';
import type { RequestForwarder } from './request-forwarder.js';
import { extractInto, sessionKey, type RequestInfo } from './request-info.js';
import { clusterMetrics, isWorker, workerId } from './workers.js';

export interface RouterServerOptions {
  backends: BackendSet;
  /** Forwards every inference request to a backend (the router's data path). */
  proxy: RequestForwarder;
  errors: RouterErrors;
  registryUrl: string | null;
  maxBodyBytes: number;
  maxBufferedBytes: number;
  maxConnections: number;
  /** Counters of the health checker, for /stats. */
  healthChecks?: () => ProbeStats;
  /** The failed requests the request path reports (its onFailedRequest), for the dashboard's list. */
  recentErrors?: RecentErrors;
  /** Whether a model's policy matches on prompt text (cache policies); absent: none does, no text is built. */
  wantsPrompt?: (model: string | undefined) => boolean;
  /** Client API keys (--api-keys, INFINI_API_KEYS); absent: the router is open, as without keys. */
  access?: AccessGate;
  /** Serve HTTPS with these options (tls-files.ts). */
  tls?: TlsOptions;
  log: Logger;
}

/** A local endpoint; the request's URL is there for the few that read a query (the dashboard's snapshot). */
type LocalHandler = (res: Http1Response, req: Http1Request) => void;

/** The router's HTTP front: a few local endpoints; everything else is proxied. */
export class RouterServer {
  readonly http: Http1Server;
  private readonly local: Map<string, LocalHandler>;
  private readonly startedSeconds = Math.floor(Date.now() / 1000);
  private metricsSource: RouterMetrics | undefined;
  readonly dashboard: Dashboard;

  constructor(private readonly opts: RouterServerOptions) {
    this.http = new Http1Server((req, res) => this.handle(req, res), {
      maxBodyBytes: opts.maxBodyBytes,
      maxBufferedBytes: opts.maxBufferedBytes,
      tooLargeMessage: (limit) => `request body exceeds --max-body (${limit} bytes)`,
      errorBody: opts.errors.protocolBody,
      onError: (status) => opts.errors.count(status),
      tls: opts.tls,
    });
    this.http.server.maxConnections = opts.maxConnections;
    this.dashboard = new Dashboard({
      backends: opts.backends,
      traffic: opts.backends.traffic,
      recentErrors: opts.recentErrors ?? new RecentErrors(),
      registryUrl: opts.registryUrl,
      log: opts.log,
      queued: () => opts.proxy.admission.queue.waitingByKey(),
    });
    const health: LocalHandler = (res) => this.health(res);
    const models: LocalHandler = (res, req) => {
      const all = aggregateModels(opts.backends.all, Date.now(), this.startedSeconds);
      sendJson(res, 200, { object: 'list', data: opts.access === undefined ? all : opts.access.visibleModels(req, all) });
    };
    // a Map: a fresh path string is looked up without being interned as a property name
    this.local = new Map<string, LocalHandler>([
      ['/health', health],
      ['/status', health],
      ['/stats', (res) => this.stats(res)],
      ['/services', (res) => this.services(res)],
      ['/models', models],
      ['/v1/models', models],
      ['/metrics', (res) => this.metrics(res)],
      ...this.dashboard.routes(),
    ]);
  }

  /** The metrics /metrics serves (made after the server: they read discovery's state). */
  setMetrics(metrics: RouterMetrics): void {
    this.metricsSource = metrics;
  }

  get server(): Server {
    return this.http.server;
  }

  private handle(req: Http1Request, res: Http1Response): void {
    const url = req.url;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const local = this.local.get(path);
    const access = this.opts.access;
    if (local !== undefined) {
      if (access !== undefined && !access.allowLocal(path, req, res)) return;
      if (req.method === 'GET' || req.method === 'HEAD') return local(res, req);
      this.opts.errors.send(res, routerError.methodNotAllowed(req.method, path), { allow: 'GET, HEAD' });
      return;
    }
    // with keys configured the gate checks, counts and then forwards
    if (access !== undefined) return access.admit(req, res, this.routingInfo(req));
    this.opts.proxy.handle(req, res, this.routingInfo(req));
  }

  private routingInfo(req: Http1Request): RequestInfo {
    const body = req.body;
    const info: RequestInfo = extractInto(
      { model: undefined, stream: false, streamUsage: false, promptCacheKey: undefined, size: 0, sessionKey: undefined, body, prompt: undefined, maxTokens: undefined, grant: undefined, priority: undefined },
      body,
      this.opts.wantsPrompt,
    );
    info.sessionKey = sessionKey(info.model, info.promptCacheKey, req.headers);
    return info;
  }

  private health(res: Http1Response): void {
    const now = Date.now();
    const backends = this.opts.backends;
    const healthy = backends.countRoutable(now);
    sendJson(res, 200, {
      status: healthy > 0 ? 'healthy' : 'running',
      router: 'running',
      healthy_services: `${healthy}/${backends.size}`,
      registry_url: this.opts.registryUrl,
      message: healthy > 0 ? null : 'No healthy services available',
      timestamp: Math.floor(now / 1000),
    });
  }

  private services(res: Http1Response): void {
    const now = Date.now();
    const list = this.opts.backends.all.map((b) => b.info(now));
    sendJson(res, 200, { services: list, total: list.length, registry_url: this.opts.registryUrl });
  }

  private stats(res: Http1Response): void {
    const now = Date.now();
    const list = this.opts.backends.all.map((b) => b.info(now));
    sendJson(res, 200, {
      total_services: list.length,
      healthy_services: list.filter((s) => s.healthy).length,
      registry_url: this.opts.registryUrl,
      in_flight: this.opts.proxy.inFlight,
      ...(this.opts.healthChecks ? { health_checks: this.opts.healthChecks() } : {}),
      pid: process.pid,
      uptime: Math.floor(process.uptime()),
      ...(workerId !== undefined ? { worker: workerId } : {}),
      memory_mb: Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 1e5) / 10])),
      services: list,
    });
  }

  private metrics(res: Http1Response): void {
    const source = this.metricsSource;
    if (source === undefined) {
      this.opts.errors.send(res, routerError.metricsUnavailable('starting'));
      return;
    }
    const text = isWorker ? clusterMetrics() : source.registry.metrics();
    text.then(
      (body) => {
        res.writeHead(200, { 'content-type': source.registry.contentType, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
      (err: Error) => this.opts.errors.send(res, routerError.metricsUnavailable(err.message)),
    );
  }

  /** Stops accepting and waits for in-flight requests up to `drainMs`, then cuts what is left. */
  close(drainMs: number): Promise<void> {
    this.dashboard.close();
    return this.http.close(drainMs);
  }
}
