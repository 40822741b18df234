import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { stringify as toToml } from 'smol-toml';
import { httpUrl, isLoopback, isWildcard, localHost } from '../common/address.js';
import { UsageError } from '../common/command.js';
import { listen } from '../common/listen.js';
import type { Logger } from '../common/log.js';
import { describeState, failureCount, toSitterInfo } from '../babysitter/info.js';
import { BackendWatch, crashLooping } from './backend-watch.js';
import { ChildService } from './child-service.js';
import { registryUrlOf, type ClusterPlan } from './cluster-file.js';
import type { UpConsole } from './console.js';
import { bearer, getJson } from '../common/get-json.js';
import { babysitterConfig } from '../babysitter/config.js';
import { babysitterSpec } from '../babysitter/spec.js';
import { readConfigFile, resolveSettings, type Settings } from '../common/settings.js';

export interface ClusterOptions {
  dataDir: string;
  waitTimeoutMs: number;
  /** Heartbeat interval given to inline babysitters that set none (a local cluster reacts faster). */
  heartbeatSeconds: number;
  log: Logger;
  out: UpConsole;
  /** Headers of up's own requests to its router (its launcher key, when the router requires keys). */
  routerHeaders?: Record<string, string>;
}

interface Row {
  service: string;
  url: string;
  models: string;
  state: string;
}

/** On top of the router's drain timeout: its own stop after the drain (closing pools, exiting). */
const ROUTER_STOP_MARGIN_S = 15;
/** On top of a babysitter's stop grace for its engine: deregistration and its own exit. */
const BABYSITTER_STOP_MARGIN_S = 30;
const BABYSITTER_STOP_GRACE_S = 30;
const REGISTRY_STOP_S = 10;


/**
 * Why `port` cannot be bound on `host`, the address the service will bind (the message names
 * `who`), or undefined when it can. That address gives the exact answer: a wildcard listener makes
 * binding 127.0.0.1 fail too, while one on another interface's address is no conflict for a
 * loopback service (checking 0.0.0.0 would refuse it). For 127.0.0.1 the IPv6 loopback is checked
 * too: a server there would answer `localhost:<port>` (no IPv6 at all is no conflict).
 */
export async function portProblem(port: number, host: string, who: string): Promise<string | undefined> {
  const bind = async (h: string): Promise<UsageError | Error | undefined> => {
    const s = createServer();
    try {
      await listen(s, port, h, who);
      await new Promise((r) => s.close(r));
      return undefined;
    } catch (err) {
      return err as Error;
    }
  };
  const err = await bind(host);
  if (err) return err.message;
  if (!host.startsWith('127.')) return undefined;
  const v6 = await bind('::1');
  return v6 && /already in use/.test(v6.message) ? `${who}: port ${port} is already in use on ::1 (it would answer localhost:${port})` : undefined;
}

function flagsToArgs(flags: Record<string, string | boolean>): string[] {
  const args: string[] = [];
  for (const [k, v] of Object.entries(flags)) {
    if (v === true) args.push(`--${k}`);
    else if (v !== false) args.push(`--${k}`, v);
  }
  return args;
}

/** How up starts each service of a plan: the command line, and a babysitter's settings file contents. */
export interface ServiceLaunch {
  registry?: string[];
  router?: string[];
  babysitters: Array<{ name: string; args: string[]; inline?: Record<string, unknown>; configPath?: string }>;
}

/**
 * The command lines up gives its services (an inline babysitter's file is written later and its
 * path put first): the plan's flags plus what up adds itself (state file, registry URL, binds,
 * its babysitters' heartbeat). `config print --file` shows the same.
 */
export function launchPlan(plan: ClusterPlan, dataDir: string, heartbeatSeconds: number): ServiceLaunch {
  const registryUrl = registryUrlOf(plan);
  const launch: ServiceLaunch = { babysitters: [] };
  if (plan.registry.enabled) {
    const flags = { ...plan.registry.flags };
    if (flags['state-file'] === undefined && !flags['no-persist']) flags['state-file'] = join(dataDir, 'registry-state.json');
    launch.registry = flagsToArgs(flags);
  }
  if (plan.router.enabled) {
    const flags = { ...plan.router.flags };
    if (flags['registry-url'] === undefined) flags['registry-url'] = registryUrl;
    // a local cluster logs every request (in the router's log file) unless told otherwise
    if (flags['request-log'] === undefined && process.env.ROUTER_REQUEST_LOG === undefined) flags['request-log'] = 'stdout';
    launch.router = flagsToArgs(flags);
  }
  for (const b of plan.babysitters) {
    let inline: Record<string, unknown> | undefined;
    if (b.inline) {
      const entry = structuredClone(b.inline) as Record<string, any>;
      entry.name ??= b.name;
      entry.babysitter = { heartbeat_interval: heartbeatSeconds, ...(entry.babysitter ?? {}) };
      inline = entry;
    }
    const flags: Record<string, string> = { ...plan.babysitterFlags, bind: b.bind };
    if (!b.hasRegistryUrl && flags['registry-url'] === undefined) flags['registry-url'] = registryUrl;
    launch.babysitters.push({ name: b.name, args: flagsToArgs(flags), inline, configPath: b.configPath });
  }
  return launch;
}

/**
 * Every babysitter's settings as it will resolve them (its file or inline section, the flags up
 * gives it, the environment), with the checks the babysitter makes at start (what a backend type
 * requires): a mistake stops `up` and `config check` before anything starts.
 */
export function babysitterSettings(launch: ServiceLaunch, clusterPath: string, env: NodeJS.ProcessEnv): Map<string, Settings> {
  const out = new Map<string, Settings>();
  for (const b of launch.babysitters) {
    const { config: _config, ...data } = b.inline ?? readConfigFile(b.configPath!);
    const label = b.configPath ? `config file ${b.configPath}` : `cluster file ${clusterPath}: babysitter '${b.name}'`;
    const settings = resolveSettings(babysitterSpec(), b.args, env, { data, label, path: b.configPath ?? clusterPath });
    babysitterConfig(settings);
    out.set(b.name, settings);
  }
  return out;
}

/** A URL for the table: where to connect, and whether the service is exposed beyond this host. */
function tableUrl(bind: string, port: number, extra?: string): string {
  const notes = [extra, isWildcard(bind) ? 'all interfaces' : undefined].filter(Boolean);
  return `${httpUrl(localHost(bind), port)}${notes.length ? ` (${notes.join(', ')})` : ''}`;
}

/** Brings a cluster plan up in order, waits until it is usable, and takes it down in order. */
export class Cluster {
  readonly registry: ChildService | undefined;
  readonly router: ChildService | undefined;
  readonly babysitters: ChildService[] = [];
  readonly watch: BackendWatch;
  private failure: string | undefined;
  private stopping = false;

  constructor(
    private readonly plan: ClusterPlan,
    private readonly opts: ClusterOptions,
  ) {
    const logs = join(opts.dataDir, 'logs');
    const sitters = join(opts.dataDir, 'babysitters');
    mkdirSync(logs, { recursive: true });
    mkdirSync(sitters, { recursive: true });
    const { log, out } = opts;
    const onFail = (svc: ChildService) => (code: number | null, signal: NodeJS.Signals | null) => {
      if (!this.failure) this.failure = `${svc.name} exited during start-up (${signal ?? `code ${code}`}): ${svc.lastLogLine()}`;
    };
    const launch = launchPlan(plan, opts.dataDir, opts.heartbeatSeconds);
    if (launch.registry) this.registry = new ChildService('registry', 'registry', ['registry', ...launch.registry], join(logs, 'registry.log'), log, out);
    if (launch.router) this.router = new ChildService('router', 'router', ['router', ...launch.router], join(logs, 'router.log'), log, out);
    for (const b of launch.babysitters) {
      let file = b.configPath!;
      if (b.inline) {
        file = join(sitters, `${b.name}.toml`);
        writeFileSync(file, toToml(b.inline));
      }
      this.babysitters.push(new ChildService(b.name, 'babysitter', ['babysitter', '--config-file', resolve(file), ...b.args], join(logs, `${b.name}.log`), log, out));
    }
    for (const svc of this.all()) svc.onUnexpectedExit = onFail(svc);
    out.setNames(this.all().map((s) => s.name));
    this.watch = new BackendWatch(
      plan.babysitters.map((b) => ({ name: b.name, infoUrl: `${httpUrl(localHost(b.bind), b.port + 1)}/info` })),
      out,
      log,
    );
  }

  all(): ChildService[] {
    return [...(this.registry ? [this.registry] : []), ...(this.router ? [this.router] : []), ...this.babysitters];
  }

  private get registryBase(): string {
    return httpUrl(localHost(this.plan.registry.host), this.plan.registry.port);
  }

  private get routerBase(): string {
    return httpUrl(localHost(this.plan.router.host), this.plan.router.port);
  }

  /** Refuses to start anything if a port the cluster needs is taken, naming the port and the service. */
  async checkPorts(): Promise<void> {
    const wanted: Array<[number, string, string]> = [];
    if (this.plan.registry.enabled) wanted.push([this.plan.registry.port, 'registry', this.plan.registry.host]);
    if (this.plan.router.enabled) wanted.push([this.plan.router.port, 'router', this.plan.router.host]);
    for (const b of this.plan.babysitters) wanted.push([b.port, `backend of ${b.name}`, b.bind], [b.port + 1, `babysitter ${b.name}`, b.bind]);
    const seen = new Map<number, string>();
    for (const [port, who, host] of wanted) {
      if (seen.has(port)) throw new UsageError(`port ${port} is planned twice: ${seen.get(port)} and ${who}`);
      seen.set(port, who);
      const problem = await portProblem(port, host, who);
      if (problem) throw new UsageError(problem);
    }
  }

  /** Polls `check` until it passes ('ready'), `giveUp` says waiting is pointless, or the wait timeout. */
  private async waitUntil(check: () => Promise<boolean>, giveUp: () => boolean = () => false): Promise<'ready' | 'gave up' | 'timeout'> {
    const deadline = Date.now() + this.opts.waitTimeoutMs;
    let delay = 100;
    while (Date.now() < deadline) {
      if (this.failure) throw new UsageError(this.failure);
      if (await check()) return 'ready';
      if (giveUp()) return 'gave up';
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(1000, delay * 1.5);
    }
    return 'timeout';
  }

  private async waitService(svc: ChildService, base: string): Promise<void> {
    const out = this.opts.out;
    const result = await this.waitUntil(async () => (await getJson(`${base}/health`))?.status === 200);
    if (result === 'ready') out.say(svc.name, `ready on ${base}`);
    else out.say(svc.name, `not ready after ${this.opts.waitTimeoutMs / 1000} s; it keeps starting in the background (log: ${svc.logPath})`);
  }

  /**
   * Starts registry, router, babysitters in that order, each ready before the next group, then
   * waits until every backend is routable, or keeps failing (then waiting longer is pointless: it
   * is reported and retried in the background).
   */
  async start(): Promise<void> {
    const out = this.opts.out;
    if (this.registry && !this.stopping) {
      this.registry.start();
      await this.waitService(this.registry, this.registryBase);
    }
    if (this.router && !this.stopping) {
      this.router.start();
      await this.waitService(this.router, this.routerBase);
    }
    if (this.stopping) return;
    for (const b of this.babysitters) b.start();
    this.watch.start();
    await Promise.all(
      this.plan.babysitters.map(async (b, i) => {
        const result = await this.waitUntil(
          async () => {
            if ((await getJson(`${httpUrl(localHost(b.bind), b.port + 1)}/health`))?.status !== 200) return false;
            if (!this.router) return true;
            const services = (await getJson(`${this.routerBase}/services`, undefined, this.opts.routerHeaders))?.body?.services;
            return Array.isArray(services) && services.some((s: any) => s.name === `${b.name}-server` && s.healthy === true);
          },
          () => crashLooping(this.watch.state(b.name)!),
        );
        const log = this.babysitters[i]!.logPath;
        if (result === 'gave up') {
          const info = this.watch.state(b.name)?.info;
          const n = info ? failureCount(info) : 0;
          out.say(b.name, `keeps failing (${n} failed starts, never ready): not waiting for it; it is retried in the background (log: ${log})`);
        } else if (result === 'timeout') {
          out.say(b.name, `not routable after ${this.opts.waitTimeoutMs / 1000} s; it keeps starting in the background (log: ${log})`);
        }
      }),
    );
    if (this.failure) throw new UsageError(this.failure);
    await this.watch.poll(); // the console tells the whole story before the table
    for (const svc of this.all()) {
      svc.onUnexpectedExit = undefined;
      svc.supervise();
    }
  }

  /**
   * Stops the router first: it refuses new connections at once and lets requests in flight finish
   * within its drain timeout, while their backends still run. Then the babysitters (each stops its
   * engine and deregisters), then the registry. Resolves once every process is gone.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const out = this.opts.out;
    await this.watch.stop();
    const drain = this.plan.router.drainSeconds;
    if (this.router?.running) out.say('router', `stopping: no new connections; requests in flight have up to ${drain} s to finish`);
    // also when it is not running: one waiting to be restarted must not be restarted now
    await this.router?.stop((drain + ROUTER_STOP_MARGIN_S) * 1000);
    const sitters = this.babysitters.filter((b) => b.running);
    if (sitters.length) {
      out.say('up', `stopping ${sitters.length === 1 ? 'the babysitter: it stops its backend' : `${sitters.length} babysitters: each stops its backend`} and deregisters`);
    }
    await Promise.all(
      this.babysitters.map((b, i) => b.stop(((this.plan.babysitters[i]?.stopGraceSeconds ?? BABYSITTER_STOP_GRACE_S) + BABYSITTER_STOP_MARGIN_S) * 1000)),
    );
    if (this.registry?.running) out.say('registry', 'stopping');
    await this.registry?.stop(REGISTRY_STOP_S * 1000);
    // a service that was restarting (back-off timer) has no process to stop: nothing is left either way
  }

  kill(): void {
    this.stopping = true;
    for (const svc of this.all()) svc.kill();
  }

  /** The router's URL for the hint under the table: `localhost` unless it listens elsewhere only. */
  get routerHintBase(): string {
    const host = this.plan.router.host;
    return isWildcard(host) || isLoopback(host) ? `http://localhost:${this.plan.router.port}` : this.routerBase;
  }

  /** The summary table rows: one per service, with URL, models and state (with why, for a backend that failed). */
  async rows(): Promise<Row[]> {
    const rows: Row[] = [];
    if (this.registry) {
      const h = await getJson(`${this.registryBase}/health`);
      rows.push({ service: 'registry', url: tableUrl(this.plan.registry.host, this.plan.registry.port), models: '-', state: h?.status === 200 ? `ready (${h.body.registered_services} records)` : 'down' });
    }
    if (this.router) {
      const h = await getJson(`${this.routerBase}/health`);
      const m = await getJson(`${this.routerBase}/v1/models`, undefined, this.opts.routerHeaders);
      const ids = (Array.isArray(m?.body?.data) ? m!.body.data.map((x: any) => x.id).join(', ') : '') || '-';
      rows.push({ service: 'router', url: tableUrl(this.plan.router.host, this.plan.router.port), models: ids, state: h?.status === 200 ? `ready (${h.body.healthy_services} backends)` : 'down' });
    }
    for (const b of this.plan.babysitters) {
      const info = toSitterInfo((await getJson(`${httpUrl(localHost(b.bind), b.port + 1)}/info`, undefined, bearer(process.env.INFINI_REGISTRY_TOKEN)))?.body);
      const models = info?.models.length ? info.models.join(', ') : '-';
      rows.push({ service: b.name, url: tableUrl(b.bind, b.port, `babysitter :${b.port + 1}`), models, state: info ? describeState(info) : 'down' });
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
