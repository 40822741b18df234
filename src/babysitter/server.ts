import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { httpUrl } from '../common/address.js';
import { checkBearer } from '../common/auth.js';
import { sendError, sendJson } from '../common/http-json.js';
import type { CommandLine } from './command-line.js';
import { BACKEND_TYPES, type BabysitterConfig } from './config.js';
import { fetchModels } from './probes.js';
import type { BabysitterMetrics } from './metrics.js';
import type { Supervisor } from './supervisor.js';

const MODELS_TIMEOUT_MS = 5_000;

/** The babysitter's own endpoints on port+1: /health (200 only while the backend is ready), /models, /info, /metrics. */
export class BabysitterServer {
  readonly server: Server;
  private readonly startedAt = Date.now();

  constructor(
    private readonly cfg: BabysitterConfig,
    private readonly cmd: CommandLine,
    private readonly supervisor: Supervisor,
    private readonly metrics: BabysitterMetrics,
  ) {
    this.server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000 }, (req, res) => void this.handle(req, res));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    const routes: Record<string, () => Promise<void> | void> = {
      '/health': () => this.health(res),
      '/models': () => this.models(res),
      '/v1/models': () => this.models(res),
      '/info': () => this.info(req, res),
      '/metrics': () => this.prometheus(res),
    };
    const route = routes[path!];
    if (!route) return sendError(res, 404, `no such endpoint: ${req.method} ${path}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendError(res, 405, `method ${req.method} not allowed on ${path}`);
    }
    try {
      await route();
    } catch (err) {
      // a client that went away is no failure of ours; anything else is a bug worth its stack
      if (res.destroyed) this.supervisor.log.debug({ err, path }, 'client gone before its answer');
      else this.supervisor.log.error({ err, path }, 'babysitter endpoint failed');
      if (!res.headersSent && !res.destroyed) sendError(res, 500, 'internal error');
    }
  }

  private health(res: ServerResponse): void {
    const s = this.supervisor;
    const ready = s.state === 'ready';
    sendJson(res, ready ? 200 : 503, {
      status: ready ? 'healthy' : s.state,
      ...(ready ? {} : { reason: s.notReadyReason ?? s.lastDownReason }),
      service: this.cfg.name,
      babysitter: 'enhanced',
      infinilm_server_running: ready,
      infinilm_server_port: this.cfg.port,
      timestamp: Math.floor(Date.now() / 1000),
    });
  }

  /** The backend's models (asked locally), always as an OpenAI list (a bare array is wrapped). */
  private async models(res: ServerResponse): Promise<void> {
    const declared = this.cfg.backend.type !== 'mock' && this.cfg.backend.models?.length;
    if (declared && this.supervisor.state === 'ready') return sendJson(res, 200, { object: 'list', data: this.supervisor.models });
    const list = await fetchModels(this.cfg.backendUrl, MODELS_TIMEOUT_MS);
    if (!list) return sendError(res, 503, `backend on port ${this.cfg.port} is not serving a models list (state: ${this.supervisor.state})`);
    sendJson(res, 200, { object: 'list', data: list });
  }

  private async prometheus(res: ServerResponse): Promise<void> {
    const body = await this.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': this.metrics.registry.contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  /**
   * The supervisor's state. Recent engine output and the command line can hold secrets, so with a
   * cluster token configured (--registry-token) they are shown only to a caller that sends it; the
   * rest (what `status` and the dashboard read) stays open. A wrong token is refused outright.
   */
  private info(req: IncomingMessage, res: ServerResponse): void {
    const auth = checkBearer(req, this.cfg.registryToken);
    if (auth === 'wrong') return sendError(res, 403, 'invalid bearer token');
    const s = this.supervisor;
    const summary = {
      name: this.cfg.name,
      service: this.cfg.name,
      babysitter: 'enhanced',
      host: this.cfg.host,
      port: this.cfg.port + 1,
      url: httpUrl(this.cfg.host, this.cfg.port + 1),
      service_type: BACKEND_TYPES[this.cfg.backend.type],
      infinilm_server_port: this.cfg.port,
      uptime: Math.floor((Date.now() - this.startedAt) / 1000),
      restart_count: s.restartCount,
      state: s.state,
      pid: s.pid ?? null,
      // the engine's, beside its pid (uptime above is the babysitter's, as in the original)
      backend_uptime: s.spawnedAt !== undefined ? Math.floor((Date.now() - s.spawnedAt) / 1000) : null,
      last_exit_code: s.lastExitCode,
      last_exit_signal: s.lastExitSignal,
      last_down_reason: s.lastDownReason,
      not_ready_reason: s.notReadyReason,
      readiness_failures: s.readinessFailures,
      group_watch: s.watched,
      next_start_in_s: s.nextStartAt !== undefined ? Math.max(0, (s.nextStartAt - Date.now()) / 1000) : null,
      models: s.models.map((m) => m.id),
      registry_url: this.cfg.registryUrl ?? null,
    };
    if (auth === 'missing') {
      return sendJson(res, 200, { ...summary, details: 'withheld: send the cluster token (--registry-token) as Authorization: Bearer for the command, metadata and recent_logs' }, { 'www-authenticate': 'Bearer' });
    }
    sendJson(res, 200, { ...summary, command: [this.cmd.program, ...this.cmd.args], metadata: this.cfg.metadata, recent_logs: s.recentLines.slice(-50) });
  }
}
