/**
 * GET /dashboard: a page an operator keeps open (static files in ./dashboard/, uPlot from
 * node_modules, nothing from the network), and the JSON it polls. The JSON is made when asked,
 * from the traffic sampler's history, the backend set and the babysitters' last answers; with
 * --workers N the answering worker has the primary gather every worker's part first.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { sendJson } from '../common/http-json.js';
import type { Http1Response } from '../common/http1/response.js';
import type { Http1Request } from '../common/http1/server.js';
import type { Logger } from '../common/log.js';
import { parentOf, type SitterTarget } from '../babysitter/cluster-view.js';
import type { Backend } from './backend.js';
import type { BackendSet } from './backend-set.js';
import { ClusterWatch } from './cluster-watch.js';
import { mergeParts, snapshotJson, trafficJson, type BackendPart, type DashboardPart, type RowQuery } from './dashboard-snapshot.js';
import type { RecentErrors } from './recent-errors.js';
import { HISTORY_SLOTS, TrafficSampler } from './traffic-sampler.js';
import type { TrafficStats } from './traffic-stats.js';
import { answerGathers, gatherFromWorkers, isWorker, workerId } from './workers.js';

export interface DashboardOptions {
  backends: BackendSet;
  traffic: TrafficStats;
  recentErrors: RecentErrors;
  registryUrl: string | null;
  log: Logger;
  /** Requests waiting for a backend with room now, by model (the forwarder's wait queue). */
  queued?: () => Array<[string, number]>;
}

const GATHER_KIND = 'dashboard';
/** Backend rows in a snapshot unless asked otherwise, and at most: 10,000 rows are megabytes of JSON every poll. */
const DEFAULT_ROWS = 500;
const MAX_ROWS = 100_000;
/** The first snapshot after a quiet spell waits this long for the babysitters' answers. */
const FIRST_CLUSTER_WAIT_MS = 1000;

const own = (name: string) => fileURLToPath(new URL(`./dashboard/${name}`, import.meta.url));
const fromPackage = (spec: string) => createRequire(import.meta.url).resolve(spec);

const HTML = 'text/html; charset=utf-8';
const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';
/** Only this router's own files: no CDN, no fonts, no inline script. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/** Path -> file and type. The page refers to these paths as they are written here. */
const ASSETS: ReadonlyArray<[string, () => string, string]> = [
  ['/dashboard', () => own('index.html'), HTML],
  ['/dashboard/', () => own('index.html'), HTML],
  ['/dashboard/app.js', () => own('app.js'), JS],
  ['/dashboard/app.css', () => own('app.css'), CSS],
  ['/dashboard/uPlot.iife.min.js', () => fromPackage('uplot/dist/uPlot.iife.min.js'), JS],
  ['/dashboard/uPlot.min.css', () => fromPackage('uplot/dist/uPlot.min.css'), CSS],
];

/** `?filter=TEXT&limit=N` of a snapshot request: which backend rows it gets (the page shows a few hundred). */
export function rowQuery(url: string): RowQuery {
  const q = url.indexOf('?');
  const params = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const limit = Number(params.get('limit') ?? DEFAULT_ROWS);
  return { filter: (params.get('filter') ?? '').slice(0, 200), limit: Number.isInteger(limit) && limit >= 0 ? Math.min(limit, MAX_ROWS) : DEFAULT_ROWS };
}

function healthOf(b: Backend, now: number): string {
  if (b.routable(now)) return 'ok';
  if (!b.listedHealthy) return 'unlisted';
  if (b.ejectedUntil > now) return 'ejected';
  if (!b.checkOk) return 'check failing';
  return 'down';
}

export class Dashboard {
  readonly sampler: TrafficSampler;
  private readonly cluster: ClusterWatch;
  /** Each file read once, on its first request. */
  private readonly files = new Map<string, Promise<Buffer>>();

  constructor(private readonly opts: DashboardOptions) {
    this.sampler = new TrafficSampler(opts.traffic);
    this.sampler.start();
    this.cluster = new ClusterWatch(opts.registryUrl, () => this.knownSitters());
    if (isWorker) answerGathers(GATHER_KIND, () => this.localPart());
  }

  /** The dashboard's paths for the router's table of local endpoints. */
  routes(): Array<[string, (res: Http1Response, req: Http1Request) => void]> {
    return [
      ...ASSETS.map(([path, file, type]): [string, (res: Http1Response) => void] => [path, (res) => this.asset(res, path, file, type)]),
      ['/dashboard/api/snapshot', (res, req) => this.snapshot(res, rowQuery(req.url))],
      ['/dashboard/api/traffic', (res) => this.traffic(res)],
    ];
  }

  close(): void {
    this.sampler.stop();
    this.cluster.stop();
  }

  /** This process's share: its traffic, its view of the backends, its recent errors. */
  localPart(): DashboardPart {
    const now = Date.now();
    const backends: BackendPart[] = this.opts.backends.all.map((b) => {
      const sitter = parentOf(b.metadata) ?? null;
      return { name: b.name, url: b.url, models: b.models, sitter, sitterUrl: sitter !== null ? b.babysitterUrl : null, inFlight: b.inFlight, health: healthOf(b, now) };
    });
    return { worker: workerId ?? null, traffic: this.sampler.part(now), backends, errors: this.opts.recentErrors.list(), queued: this.opts.queued?.() ?? [] };
  }

  private knownSitters(): SitterTarget[] {
    const out: SitterTarget[] = [];
    for (const b of this.opts.backends.all) {
      const sitter = parentOf(b.metadata);
      if (sitter !== undefined) out.push({ name: sitter, url: b.babysitterUrl });
    }
    return out;
  }

  private async parts(): Promise<DashboardPart[]> {
    if (!isWorker) return [this.localPart()];
    return (await gatherFromWorkers(GATHER_KIND)) as DashboardPart[];
  }

  private snapshot(res: Http1Response, rows: RowQuery): void {
    this.cluster.touch();
    const answer = async () => {
      const [parts, cluster] = await Promise.all([this.parts(), this.cluster.current(FIRST_CLUSTER_WAIT_MS)]);
      return snapshotJson(mergeParts(parts), cluster, this.opts.registryUrl, HISTORY_SLOTS, rows);
    };
    this.json(res, answer());
  }

  private traffic(res: Http1Response): void {
    this.json(res, this.parts().then((parts) => trafficJson(mergeParts(parts))));
  }

  private json(res: Http1Response, body: Promise<unknown>): void {
    body.then(
      (b) => sendJson(res, 200, b, { 'cache-control': 'no-store' }),
      (err: Error) => {
        this.opts.log.warn({ err: err.message }, 'dashboard snapshot failed');
        sendJson(res, 503, { error: `dashboard snapshot unavailable: ${err.message}` });
      },
    );
  }

  private asset(res: Http1Response, path: string, file: () => string, type: string): void {
    let body = this.files.get(path);
    if (body === undefined) {
      body = Promise.resolve().then(() => readFile(file()));
      this.files.set(path, body);
    }
    body.then(
      (buf) => {
        res.writeHead(200, { 'content-type': type, 'content-length': buf.length, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', ...(type === HTML ? { 'content-security-policy': CSP } : {}) });
        res.end(buf);
      },
      (err: Error) => {
        // a build that did not copy the page: say so instead of proxying the path
        this.files.delete(path);
        this.opts.log.error({ err: err.message, path }, 'dashboard file missing from the installation');
        sendJson(res, 500, { error: `dashboard file missing: ${err.message}` });
      },
    );
  }
}
