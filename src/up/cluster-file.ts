import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { readFileSync } from 'node:fs';
import { UsageError, type CommandSpec } from '../common/command.js';
import { registrySpec } from '../registry/cli.js';
import { routerSpec } from '../router/cli.js';

type Table = Record<string, unknown>;

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
}

export interface ClusterPlan {
  source: string;
  registry: { enabled: boolean; flags: Record<string, string | boolean>; port: number; url: string };
  router: { enabled: boolean; flags: Record<string, string | boolean>; port: number };
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

/** Table keys to CLI flags, checked against the service's own options. */
function toFlags(t: Table, spec: CommandSpec, section: string, fail: (key: string, problem: string) => never): Record<string, string | boolean> {
  const flags: Record<string, string | boolean> = {};
  for (const [raw, value] of Object.entries(t)) {
    const key = raw.replace(/_/g, '-');
    const opt = spec.options[key] ?? (key === 'log-level' ? { type: 'string' as const } : undefined);
    if (!opt) fail(`${section}.${raw}`, `unknown option (expected one of ${Object.keys(spec.options).join(', ')})`);
    if (opt.type === 'boolean') {
      if (typeof value !== 'boolean') fail(`${section}.${raw}`, 'expected true or false');
      flags[key] = value;
    } else {
      if (typeof value !== 'string' && typeof value !== 'number') fail(`${section}.${raw}`, 'expected a string or a number');
      flags[key] = String(value);
    }
  }
  return flags;
}

function portOf(value: string | boolean | undefined, fallback: number, fail: () => never): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail();
  return n;
}

/** Reads a babysitter TOML file just enough to know its port, name and registry. */
function peekBabysitterFile(path: string, where: string): { port: number; name?: string; hasRegistryUrl: boolean } {
  let data: Table;
  try {
    data = parseToml(readFileSync(path, 'utf8')) as Table;
  } catch (err) {
    throw new UsageError(`${where}: cannot read babysitter config ${path}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!Number.isInteger(data.port)) throw new UsageError(`${where}: babysitter config ${path} has no integer 'port'`);
  return { port: data.port as number, name: typeof data.name === 'string' ? data.name : undefined, hasRegistryUrl: typeof data.registry_url === 'string' };
}

/**
 * Parses a cluster file: `[registry]` and `[router]` tables (their flags as keys, `enabled = false`
 * to leave one out) and `[[babysitter]]` entries, each the babysitter's own schema inline or
 * `config = "<path>"` (relative to the cluster file). Errors name the file and the key.
 */
export function parseCluster(text: string, source: string): ClusterPlan {
  const fail = (key: string, problem: string): never => {
    throw new UsageError(`cluster file ${source}: key '${key}': ${problem}`);
  };
  let data: Table;
  try {
    data = parseToml(text) as Table;
  } catch (err) {
    throw new UsageError(`cluster file ${source}: ${(err as Error).message.split('\n')[0]}`);
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
  const regFlags = toFlags(reg, registrySpec('registry'), 'registry', fail);
  const rouFlags = toFlags(rou, routerSpec('router'), 'router', fail);
  const regPort = portOf(regFlags.port, 8081, () => fail('registry.port', 'expected an integer from 1 to 65535'));
  const rouPort = portOf(rouFlags['router-port'], 8080, () => fail('router.router-port', 'expected an integer from 1 to 65535'));

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
      const peek = peekBabysitterFile(path, `cluster file ${source}: key '${where}.config'`);
      b = { name: peek.name ?? `babysitter-${peek.port}`, configPath: path, port: peek.port, hasRegistryUrl: peek.hasRegistryUrl };
    } else {
      if (!Number.isInteger(entry.port) || (entry.port as number) < 1 || (entry.port as number) > 65534) fail(`${where}.port`, 'expected an integer from 1 to 65534');
      if (!isTable(entry.backend)) fail(`${where}.backend`, 'required table is missing');
      const name = typeof entry.name === 'string' ? entry.name : `babysitter-${entry.port}`;
      b = { name, inline: entry, port: entry.port as number, hasRegistryUrl: typeof entry.registry_url === 'string' };
    }
    if (names.has(b.name)) fail(`${where}.name`, `duplicate babysitter name '${b.name}'`);
    names.add(b.name);
    return b;
  });
  return {
    source,
    registry: { enabled: regEnabled, flags: regFlags, port: regPort, url: `http://127.0.0.1:${regPort}` },
    router: { enabled: rouEnabled, flags: rouFlags, port: rouPort },
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
  plan.registry.url = env.REGISTRY_URL || `http://127.0.0.1:${plan.registry.port}`;
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
      const peek = peekBabysitterFile(file, 'environment BABYSITTER_CONFIGS');
      return { name: peek.name ?? `babysitter-${peek.port}`, configPath: file, port: peek.port, hasRegistryUrl: peek.hasRegistryUrl };
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
