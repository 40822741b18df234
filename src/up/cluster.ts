import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { stringify as toToml } from 'smol-toml';
import { httpUrl } from '../common/address.js';
import { UsageError } from '../common/command.js';
import type { Logger } from '../common/log.js';
import { ChildService } from './child-service.js';
import type { ClusterPlan } from './cluster-file.js';

export interface ClusterOptions {
  dataDir: string;
  waitTimeoutMs: number;
  /** Heartbeat interval given to inline babysitters that set none (a local cluster reacts faster). */
  heartbeatSeconds: number;
  log: Logger;
}

interface Row {
  service: string;
  url: string;
  models: string;
  state: string;
}

/** Whether nothing listens on a TCP port (checked on the wildcard address, as the services bind). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const s = createServer();
    s.once('error', () => resolveFree(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolveFree(true)));
  });
}

async function getJson(url: string, timeoutMs = 2000): Promise<{ status: number; body: any } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, body };
  } catch {
    return undefined;
  }
}

function flagsToArgs(flags: Record<string, string | boolean>): string[] {
  const args: string[] = [];
  for (const [k, v] of Object.entries(flags)) {
    if (v === true) args.push(`--${k}`);
    else if (v !== false) args.push(`--${k}`, v);
  }
  return args;
}

/** Brings a cluster plan up in order, waits until it is usable, and takes it down in order. */
export class Cluster {
  readonly registry: ChildService | undefined;
  readonly router: ChildService | undefined;
  readonly babysitters: ChildService[] = [];
  private failure: string | undefined;

  constructor(
    private readonly plan: ClusterPlan,
    private readonly opts: ClusterOptions,
  ) {
    const logs = join(opts.dataDir, 'logs');
    const sitters = join(opts.dataDir, 'babysitters');
    mkdirSync(logs, { recursive: true });
    mkdirSync(sitters, { recursive: true });
    const log = opts.log;
    const onFail = (svc: ChildService) => (code: number | null, signal: NodeJS.Signals | null) => {
      if (!this.failure) this.failure = `${svc.name} exited during start-up (${signal ?? `code ${code}`}): ${svc.lastLogLine()}`;
    };
    if (plan.registry.enabled) {
      const flags = { ...plan.registry.flags };
      if (flags['state-file'] === undefined && !flags['no-persist']) flags['state-file'] = join(opts.dataDir, 'registry-state.json');
      this.registry = new ChildService('registry', 'registry', ['registry', ...flagsToArgs(flags)], join(logs, 'registry.log'), log);
    }
    if (plan.router.enabled) {
      const flags = { ...plan.router.flags };
      if (flags['registry-url'] === undefined) flags['registry-url'] = plan.registry.url;
      this.router = new ChildService('router', 'router', ['router', ...flagsToArgs(flags)], join(logs, 'router.log'), log);
    }
    for (const b of plan.babysitters) {
      let file = b.configPath;
      if (b.inline) {
        const entry = structuredClone(b.inline) as Record<string, any>;
        entry.name ??= b.name;
        entry.babysitter = { heartbeat_interval: opts.heartbeatSeconds, ...(entry.babysitter ?? {}) };
        file = join(sitters, `${b.name}.toml`);
        writeFileSync(file, toToml(entry));
      }
      const flags: Record<string, string> = { ...plan.babysitterFlags };
      if (!b.hasRegistryUrl && flags['registry-url'] === undefined) flags['registry-url'] = plan.registry.url;
      this.babysitters.push(new ChildService(b.name, 'babysitter', ['babysitter', '--config-file', resolve(file!), ...flagsToArgs(flags)], join(logs, `${b.name}.log`), log));
    }
    for (const svc of this.all()) svc.onUnexpectedExit = onFail(svc);
  }

  all(): ChildService[] {
    return [...(this.registry ? [this.registry] : []), ...(this.router ? [this.router] : []), ...this.babysitters];
  }

  /** Refuses to start anything if a port the cluster needs is taken, naming the port and the service. */
  async checkPorts(): Promise<void> {
    const wanted: Array<[number, string]> = [];
    if (this.plan.registry.enabled) wanted.push([this.plan.registry.port, 'registry']);
    if (this.plan.router.enabled) wanted.push([this.plan.router.port, 'router']);
    for (const b of this.plan.babysitters) wanted.push([b.port, `backend of ${b.name}`], [b.port + 1, `babysitter ${b.name}`]);
    const seen = new Map<number, string>();
    for (const [port, who] of wanted) {
      if (seen.has(port)) throw new UsageError(`port ${port} is planned twice: ${seen.get(port)} and ${who}`);
      seen.set(port, who);
      if (!(await portFree(port))) throw new UsageError(`port ${port} (${who}) is already in use`);
    }
  }

  private async waitUntil(what: string, check: () => Promise<boolean>): Promise<boolean> {
    const deadline = Date.now() + this.opts.waitTimeoutMs;
    let delay = 100;
    while (Date.now() < deadline) {
      if (this.failure) throw new UsageError(this.failure);
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(1000, delay * 1.5);
    }
    this.opts.log.warn({ what, waited_s: this.opts.waitTimeoutMs / 1000 }, 'not ready within the wait timeout; it keeps starting in the background');
    return false;
  }

  /** Starts registry, router, babysitters in that order, each ready before the next group. */
  async start(): Promise<void> {
    const log = this.opts.log;
    if (this.registry) {
      this.registry.start();
      log.info({ port: this.plan.registry.port, log: this.registry.logPath }, 'starting registry');
      await this.waitUntil('registry', async () => (await getJson(`http://127.0.0.1:${this.plan.registry.port}/health`))?.status === 200);
    }
    if (this.router) {
      this.router.start();
      log.info({ port: this.plan.router.port, log: this.router.logPath }, 'starting router');
      await this.waitUntil('router', async () => (await getJson(`http://127.0.0.1:${this.plan.router.port}/health`))?.status === 200);
    }
    for (const b of this.babysitters) {
      b.start();
      log.info({ name: b.name, log: b.logPath }, 'starting babysitter');
    }
    await Promise.all(
      this.plan.babysitters.map((b) =>
        this.waitUntil(`backend of ${b.name}`, async () => {
          if ((await getJson(`http://127.0.0.1:${b.port + 1}/health`))?.status !== 200) return false;
          if (!this.router) return true;
          const services = (await getJson(`http://127.0.0.1:${this.plan.router.port}/services`))?.body?.services;
          return Array.isArray(services) && services.some((s: any) => s.name === `${b.name}-server` && s.healthy === true);
        }),
      ),
    );
    if (this.failure) throw new UsageError(this.failure);
    for (const svc of this.all()) {
      svc.onUnexpectedExit = undefined;
      svc.supervise();
    }
  }

  /** Stops babysitters first (backends stop and deregister), then the router, then the registry. */
  async stop(): Promise<void> {
    await Promise.all(this.babysitters.map((b) => b.stop(60_000)));
    await this.router?.stop(35_000);
    await this.registry?.stop(10_000);
  }

  kill(): void {
    for (const svc of this.all()) svc.kill();
  }

  /** The summary table rows: one per service, with URL, models and state. */
  async rows(): Promise<Row[]> {
    const rows: Row[] = [];
    if (this.registry) {
      const h = await getJson(`http://127.0.0.1:${this.plan.registry.port}/health`);
      rows.push({ service: 'registry', url: httpUrl('127.0.0.1', this.plan.registry.port), models: '-', state: h?.status === 200 ? `ready (${h.body.registered_services} records)` : 'down' });
    }
    if (this.router) {
      const h = await getJson(`http://127.0.0.1:${this.plan.router.port}/health`);
      const m = await getJson(`http://127.0.0.1:${this.plan.router.port}/v1/models`);
      const ids = Array.isArray(m?.body?.data) ? m!.body.data.map((x: any) => x.id).join(', ') : '-';
      rows.push({ service: 'router', url: httpUrl('127.0.0.1', this.plan.router.port), models: ids, state: h?.status === 200 ? `ready (${h.body.healthy_services} backends)` : 'down' });
    }
    for (const b of this.plan.babysitters) {
      const info = await getJson(`http://127.0.0.1:${b.port + 1}/info`);
      const models = Array.isArray(info?.body?.models) && info!.body.models.length ? info!.body.models.join(', ') : '-';
      rows.push({ service: b.name, url: `${httpUrl('127.0.0.1', b.port)} (babysitter :${b.port + 1})`, models, state: info?.body?.state ?? 'down' });
    }
    return rows;
  }
}

export function formatTable(rows: Row[]): string {
  const head: Row = { service: 'SERVICE', url: 'URL', models: 'MODELS', state: 'STATE' };
  const all = [head, ...rows];
  const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const widths = { service: w('service'), url: w('url'), models: w('models'), state: w('state') };
  return all.map((r) => `${r.service.padEnd(widths.service)}  ${r.url.padEnd(widths.url)}  ${r.models.padEnd(widths.models)}  ${r.state}`.trimEnd()).join('\n');
}
