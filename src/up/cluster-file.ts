import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { httpUrl, isLoopback, localHost } from '../common/address.js';
import { UsageError } from '../common/command.js';
import { fileValues, flagText, knownFileKeys, parseConfigText, readConfigFile, type ServiceSpec } from '../common/settings.js';
import { babysitterSpec } from '../babysitter/spec.js';
import { registrySpec } from '../registry/spec.js';
import { routerSpec } from '../router/spec.js';

type Table = Record<string, unknown>;

/** Ports of the default cluster, also used by a cluster file that leaves a section out. */
export const DEFAULT_REGISTRY_PORT = 18000;
export const DEFAULT_ROUTER_PORT = 8000;
/** What a local cluster binds unless told otherwise: nothing is exposed to the network by surprise. */
export const LOCAL_BIND = '127.0.0.1';
/** The router's own default --drain-timeout. */
const ROUTER_DRAIN_SECONDS = 30;

/** One babysitter of the cluster: its TOML (inline, written to the data dir) or an existing file. */
export interface BabysitterEntry {
  name: string;
  /** Inline babysitter schema (written to a file at start), or undefined when `configPath` is used. */
  inline?: Table;
  configPath?: string;
  /** Backend port, for the port check and the readiness wait. */
  port: number;
  /** Whether its config names a registry itself (then up does not impose its own). */
  hasRegistryUrl: boolean;
  /** `bind` and `host` (advertised) as its own config sets them. */
  fileBind?: string;
  fileHost?: string;
  /** What its server (port+1) and a preset backend bind: see resolveBinds. */
  bind: string;
  /** Its `[babysitter] stop_grace` (seconds the engine gets to stop), when set. */
  stopGraceSeconds?: number;
}

export interface ClusterPlan {
  source: string;
  /** `host`: the bind address (see resolveBinds); `url`: REGISTRY_URL when the environment names one. */
  registry: { enabled: boolean; flags: Record<string, string | boolean>; port: number; host: string; url?: string };
  /** `fileHost`/`drainSeconds` include what the router's own `config` file says. */
  router: { enabled: boolean; flags: Record<string, string | boolean>; port: number; host: string; fileHost?: string; drainSeconds: number };
  babysitters: BabysitterEntry[];
  /** Extra flags for every babysitter (from launch environment variables). */
  babysitterFlags: Record<string, string>;
}

/** The embedded default: registry 18000, router 8000, three mocks with overlapping models. */
export const DEFAULT_CLUSTER = `# infini-svc default local cluster
[registry]
port = 18000

[router]
router-port = 8000

[[babysitter]]
name = "mock-a"
port = 8100
[babysitter.backend]
type = "mock"
models = ["mock-small", "mock-medium"]
args = ["--profile", "realistic"]

[[babysitter]]
name = "mock-b"
port = 8200
[babysitter.backend]
type = "mock"
models = ["mock-medium", "mock-large"]
args = ["--profile", "realistic"]

[[babysitter]]
name = "mock-c"
port = 8300
[babysitter.backend]
type = "mock"
models = ["mock-small", "mock-large"]
args = ["--profile", "realistic"]
`;

const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** Every key a cluster file may hold, by section, for "did you mean" across sections. */
function clusterKeys(except: string): string[] {
  const keys: string[] = [];
  if (except !== 'registry') keys.push(...knownFileKeys(registrySpec()).map((k) => `registry.${k}`));
  if (except !== 'router') keys.push(...knownFileKeys(routerSpec()).map((k) => `router.${k}`));
  if (except !== 'babysitter') keys.push(...knownFileKeys(babysitterSpec()).map((k) => `babysitter.${k}`));
  return keys;
}

/**
 * A section's keys checked against the service's spec, as flags to start it with. `config` names
 * the service's own config file (checked when it is read).
 */
function toFlags(t: Table, spec: ServiceSpec, section: string, label: string): Record<string, string | boolean> {
  const flags: Record<string, string | boolean> = {};
  const settings = spec.settings;
  const { config, ...rest } = t;
  if (config !== undefined) {
    if (typeof config !== 'string') throw new UsageError(`${label}: key '${section}.config': expected a path`);
    flags.config = config;
  }
  for (const [key, { value }] of fileValues(spec, rest, label, section, clusterKeys(section))) {
    const s = settings.find((x) => x.key === key) ?? { key, type: 'string' as const, help: '' };
    flags[key] = flagText(s, value);
  }
  return flags;
}

/** A babysitter's settings (inline or its own file) checked against its spec before anything starts. */
function checkBabysitter(t: Table, label: string, at: string): void {
  const rest = { ...t };
  delete rest.config;
  fileValues(babysitterSpec(), rest, label, at, clusterKeys('babysitter'));
}

function portOf(value: string | boolean | undefined, fallback: number, fail: () => never): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail();
  return n;
}

/** Reads a babysitter TOML file just enough to know its port, name, registry and addresses. */
function peekBabysitterFile(path: string, where: string): Omit<BabysitterEntry, 'name' | 'bind'> & { name?: string } {
  let data: Table;
  try {
    data = readConfigFile(path);
  } catch (err) {
    throw new UsageError(`${where}: ${(err as Error).message}`);
  }
  checkBabysitter(data, `${where}: config file ${path}`, '');
  if (!Number.isInteger(data.port)) throw new UsageError(`${where}: babysitter config ${path} has no integer 'port'`);
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return { configPath: path, port: data.port as number, name: str(data.name), hasRegistryUrl: typeof data.registry_url === 'string', fileBind: str(data.bind), fileHost: str(data.host), stopGraceSeconds: stopGraceOf(data) };
}

function stopGraceOf(data: Table): number | undefined {
  const v = isTable(data.babysitter) ? data.babysitter.stop_grace : undefined;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** A babysitter entry from its own config file. */
function fromBabysitterFile(path: string, where: string): BabysitterEntry {
  const peek = peekBabysitterFile(path, where);
  return { ...peek, name: peek.name ?? `babysitter-${peek.port}`, bind: peek.fileBind ?? LOCAL_BIND };
}

/** What the router's own `config` file (checked against its spec) says about its address, port and drain. */
function peekRouterConfig(path: string): { host?: string; port?: string; drain?: string } {
  const values = fileValues(routerSpec(), readConfigFile(path), `config file ${path}`);
  const get = (key: string) => {
    const v = values.get(key)?.value;
    return v === undefined ? undefined : String(v);
  };
  return { host: get('host'), port: get('router-port'), drain: get('drain-timeout') };
}

/**
 * Parses a cluster file: `[registry]` and `[router]` tables (their flags as keys, `enabled = false`
 * to leave one out) and `[[babysitter]]` entries, each the babysitter's own schema inline or
 * `config = "<path>"` (relative to the cluster file). Errors name the file and the key.
 */
export function parseCluster(text: string, source: string): ClusterPlan {
  const label = `cluster file ${source}`;
  const fail = (key: string, problem: string): never => {
    throw new UsageError(`${label}: key '${key}': ${problem}`);
  };
  let data: Table;
  try {
    data = parseConfigText(text, source);
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/^config file /, 'cluster file '));
  }
  for (const key of Object.keys(data)) if (!['registry', 'router', 'babysitter'].includes(key)) fail(key, 'unknown section (expected registry, router, babysitter)');
  const section = (name: string): Table => {
    const v = data[name];
    if (v === undefined) return {};
    return isTable(v) ? v : fail(name, 'expected a table');
  };
  const reg = { ...section('registry') };
  const rou = { ...section('router') };
  const enabled = (t: Table, name: string) => {
    const e = t.enabled;
    delete t.enabled;
    if (e !== undefined && typeof e !== 'boolean') fail(`${name}.enabled`, 'expected true or false');
    return e !== false;
  };
  const regEnabled = enabled(reg, 'registry');
  const rouEnabled = enabled(rou, 'router');
  const regFlags = toFlags(reg, registrySpec(), 'registry', label);
  const rouFlags = toFlags(rou, routerSpec(), 'router', label);
  const regPort = portOf(regFlags.port, DEFAULT_REGISTRY_PORT, () => fail('registry.port', 'expected an integer from 1 to 65535'));
  // flags win over the router's own config file, as in the router
  const rouFile = typeof rouFlags.config === 'string' ? peekRouterConfig(rouFlags.config) : {};
  const rouPort = portOf(rouFlags['router-port'] ?? rouFile.port, DEFAULT_ROUTER_PORT, () => fail('router.router-port', 'expected an integer from 1 to 65535'));
  const drain = Number(rouFlags['drain-timeout'] ?? rouFile.drain ?? ROUTER_DRAIN_SECONDS);

  const list = data.babysitter === undefined ? [] : Array.isArray(data.babysitter) ? data.babysitter : fail('babysitter', 'expected [[babysitter]] entries');
  const baseDir = source === '(default)' ? process.cwd() : dirname(resolve(source));
  const names = new Set<string>();
  const babysitters = list.map((entry, i): BabysitterEntry => {
    const where = `babysitter[${i}]`;
    if (!isTable(entry)) fail(where, 'expected a table');
    let b: BabysitterEntry;
    if (entry.config !== undefined) {
      if (typeof entry.config !== 'string') fail(`${where}.config`, 'expected a path');
      const path = isAbsolute(entry.config as string) ? (entry.config as string) : join(baseDir, entry.config as string);
      if (!existsSync(path)) fail(`${where}.config`, `file not found: ${path}`);
      b = fromBabysitterFile(path, `cluster file ${source}: key '${where}.config'`);
    } else {
      if (!Number.isInteger(entry.port) || (entry.port as number) < 1 || (entry.port as number) > 65534) fail(`${where}.port`, 'expected an integer from 1 to 65534');
      if (!isTable(entry.backend)) fail(`${where}.backend`, 'required table is missing');
      checkBabysitter(entry, label, where);
      const name = typeof entry.name === 'string' ? entry.name : `babysitter-${entry.port}`;
      const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
      b = { name, inline: entry, port: entry.port as number, hasRegistryUrl: typeof entry.registry_url === 'string', fileBind: str(entry.bind), fileHost: str(entry.host), bind: str(entry.bind) ?? LOCAL_BIND, stopGraceSeconds: stopGraceOf(entry) };
    }
    if (names.has(b.name)) fail(`${where}.name`, `duplicate babysitter name '${b.name}'`);
    names.add(b.name);
    return b;
  });
  return {
    source,
    registry: { enabled: regEnabled, flags: regFlags, port: regPort, host: typeof regFlags.host === 'string' ? regFlags.host : LOCAL_BIND },
    router: {
      enabled: rouEnabled,
      flags: rouFlags,
      port: rouPort,
      host: typeof rouFlags.host === 'string' ? rouFlags.host : (rouFile.host ?? LOCAL_BIND),
      fileHost: rouFile.host,
      drainSeconds: Number.isFinite(drain) && drain > 0 ? drain : ROUTER_DRAIN_SECONDS,
    },
    babysitters,
    babysitterFlags: {},
  };
}

/**
 * The original launch scripts' environment (REGISTRY_PORT, ROUTER_PORT, BABYSITTER_CONFIGS,
 * BABYSITTER_HOST, LAUNCH_COMPONENTS, ...), applied over the cluster file so existing deployments
 * switch with their environment unchanged.
 */
export function applyLaunchEnvironment(plan: ClusterPlan, env: NodeJS.ProcessEnv, cwd: string): ClusterPlan {
  const fail = (name: string, problem: string): never => {
    throw new UsageError(`environment ${name}: ${problem}`);
  };
  const set = (target: Record<string, string | boolean>, flag: string, name: string) => {
    const v = env[name];
    if (v !== undefined && v !== '') target[flag] = v;
  };
  set(plan.registry.flags, 'port', 'REGISTRY_PORT');
  set(plan.registry.flags, 'health-interval', 'REGISTRY_HEALTH_INTERVAL');
  set(plan.registry.flags, 'health-timeout', 'REGISTRY_HEALTH_TIMEOUT');
  set(plan.registry.flags, 'cleanup-interval', 'REGISTRY_CLEANUP_INTERVAL');
  set(plan.router.flags, 'router-port', 'ROUTER_PORT');
  set(plan.router.flags, 'health-interval', 'ROUTER_HEALTH_INTERVAL');
  set(plan.router.flags, 'health-timeout', 'ROUTER_HEALTH_TIMEOUT');
  set(plan.router.flags, 'registry-sync-interval', 'ROUTER_REGISTRY_SYNC_INTERVAL');
  const intPort = (v: string | boolean | undefined, name: string, fallback: number) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : fail(name, `expected a port, got '${String(v)}'`);
  };
  plan.registry.port = intPort(plan.registry.flags.port, 'REGISTRY_PORT', plan.registry.port);
  plan.router.port = intPort(plan.router.flags['router-port'], 'ROUTER_PORT', plan.router.port);
  if (env.REGISTRY_URL) plan.registry.url = env.REGISTRY_URL;
  if (env.ROUTER_REGISTRY_URL) plan.router.flags['registry-url'] = env.ROUTER_REGISTRY_URL;
  const sitterRegistry = env.BABYSITTER_REGISTRY_URL;
  if (sitterRegistry) plan.babysitterFlags['registry-url'] = sitterRegistry;
  if (env.BABYSITTER_HOST) plan.babysitterFlags.host = env.BABYSITTER_HOST;
  const routerUrl = env.BABYSITTER_ROUTER_URL || env.ROUTER_URL;
  if (routerUrl) plan.babysitterFlags['router-url'] = routerUrl;

  if (env.BABYSITTER_CONFIGS) {
    plan.babysitters = env.BABYSITTER_CONFIGS.trim().split(/\s+/).map((name) => {
      const file = name.includes('/') ? resolve(cwd, name) : join(cwd, 'config', name.endsWith('.toml') ? name : `${name}.toml`);
      if (!existsSync(file)) fail('BABYSITTER_CONFIGS', `file not found: ${file}`);
      return fromBabysitterFile(file, 'environment BABYSITTER_CONFIGS');
    });
  }
  const components = (env.LAUNCH_COMPONENTS ?? 'all').trim().toLowerCase();
  if (components !== 'all' && components !== '') {
    const wanted = new Set(components === 'none' ? [] : components.split(',').map((c) => c.trim()));
    for (const c of wanted) if (!['registry', 'router', 'babysitter'].includes(c)) fail('LAUNCH_COMPONENTS', `unknown component '${c}' (expected all, none, or a list of registry, router, babysitter)`);
    plan.registry.enabled &&= wanted.has('registry');
    plan.router.enabled &&= wanted.has('router');
    if (!wanted.has('babysitter')) plan.babysitters = [];
  }
  return plan;
}

/**
 * Bind addresses: what a section sets (registry and router `host`, babysitter `bind`, the router's
 * own config file) stays; everything else binds `defaultBind` (127.0.0.1 unless `up --bind`), so a
 * local cluster is not reachable from the network by accident. A babysitter advertised at an
 * address others use (`host`, BABYSITTER_HOST) is never bound to loopback only: the router and
 * registry reach it there, so it binds `defaultBind` if that is not loopback, else 0.0.0.0.
 */
export function resolveBinds(plan: ClusterPlan, defaultBind = LOCAL_BIND): ClusterPlan {
  if (plan.registry.flags.host === undefined) plan.registry.flags.host = defaultBind;
  plan.registry.host = String(plan.registry.flags.host);
  if (plan.router.flags.host === undefined && plan.router.fileHost === undefined) plan.router.flags.host = defaultBind;
  plan.router.host = String(plan.router.flags.host ?? plan.router.fileHost);
  for (const b of plan.babysitters) {
    const advertised = plan.babysitterFlags.host ?? b.fileHost ?? 'localhost';
    const outward = !isLoopback(advertised) && isLoopback(defaultBind) ? '0.0.0.0' : defaultBind;
    b.bind = b.fileBind ?? outward;
  }
  return plan;
}

/** The registry URL given to the router and babysitters: REGISTRY_URL, else this cluster's registry. */
export function registryUrlOf(plan: ClusterPlan): string {
  return plan.registry.url ?? httpUrl(localHost(plan.registry.host), plan.registry.port);
}
