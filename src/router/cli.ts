import cluster from 'node:cluster';
import { UsageError, numberOption, parseCommand, portOption, runCommand, type CommandSpec, type OptionValues } from '../common/command.js';
import { mergeFlagFile } from '../common/config-file.js';
import { listen } from '../common/listen.js';
import { createLogger } from '../common/log.js';
import { onShutdownSignal } from '../common/shutdown.js';
import { BackendSet } from './backend-set.js';
import { ERROR_FORMATS, RouterErrors, type ErrorFormat } from './errors.js';
import { HealthChecker } from './health-checker.js';
import { RouterMetrics } from './metrics.js';
import { POLICIES, createPolicy } from './policies/index.js';
import { RequestForwarder } from './request-forwarder.js';
import { RegistryWatcher } from './registry-watcher.js';
import { RouterServer } from './server.js';
import { loadStaticServices } from './static-services.js';
import { onPrimaryStop, runPrimary } from './workers.js';

const isPrimary = cluster.isPrimary;

/** The drop-in binary answers errors exactly as the original did; `infini-svc router` as OpenAI does. */
const COMPAT_BINARY = 'infini-router';

export function routerSpec(name: string): CommandSpec {
  return {
    name,
    summary: 'OpenAI-compatible router: model-aware load balancing over inference backends, with streaming.',
    options: {
      'router-port': { type: 'string', default: '8080', metavar: 'PORT', help: 'listen port (0 picks a free one)' },
      host: { type: 'string', default: '0.0.0.0', metavar: 'ADDR', help: 'bind address' },
      config: { type: 'string', metavar: 'FILE', help: 'JSON or TOML file of these options (flag names as keys); flags win' },
      'registry-url': { type: 'string', metavar: 'URL', help: 'discover backends from this registry' },
      'registry-token': { type: 'string', env: 'INFINI_REGISTRY_TOKEN', metavar: 'TOKEN', help: 'bearer token for the registry' },
      'static-services': { type: 'string', metavar: 'FILE', help: 'JSON file of static backends' },
      'health-interval': { type: 'string', default: '30', metavar: 'SECONDS', help: 'period of the router\'s own backend checks' },
      'health-timeout': { type: 'string', default: '5', metavar: 'SECONDS', help: 'timeout of one check' },
      'max-errors': { type: 'string', default: '3', metavar: 'N', help: 'consecutive failed attempts that eject a backend (30 s, doubling to 5 min)' },
      'registry-sync-interval': { type: 'string', default: '10', metavar: 'SECONDS', help: 'poll period for a registry without a change feed' },
      'service-removal-grace-period': { type: 'string', default: '60', metavar: 'SECONDS', help: 'how long a backend missing from the registry is kept' },
      'connect-timeout': { type: 'string', default: '5', metavar: 'SECONDS', help: 'upstream connect timeout' },
      'idle-timeout': { type: 'string', default: '300', metavar: 'SECONDS', help: 'longest silence between streamed chunks' },
      policy: { type: 'string', default: 'round-robin', metavar: 'NAME', help: `balancing policy: ${Object.keys(POLICIES).join(', ')}` },
      'max-body': { type: 'string', default: '32MiB', metavar: 'BYTES', help: 'largest request body (suffixes KiB, MiB)' },
      'max-buffered': { type: 'string', default: '1GiB', metavar: 'BYTES', help: 'request body bytes held for all connections together; beyond it, connections still sending a body wait' },
      'max-connections': { type: 'string', default: '16384', metavar: 'N', help: 'cap on client connections' },
      'drain-timeout': { type: 'string', default: '30', metavar: 'SECONDS', help: 'how long shutdown waits for in-flight requests' },
      'error-format': {
        type: 'string',
        default: name === COMPAT_BINARY ? 'original' : 'openai',
        env: 'ROUTER_ERROR_FORMAT',
        metavar: 'FORMAT',
        help: `errors the router produces: openai (OpenAI's shape; unknown model 404) or original (the original's codes and {"error": "..."} strings; default of ${COMPAT_BINARY})`,
      },
      workers: { type: 'string', default: '1', metavar: 'N', help: 'router processes sharing the port (each balances on its own; /metrics is aggregated, /stats is per worker)' },
    },
    epilog:
      'Environment: PROXY_TIMEOUT_SECONDS (1800; response headers and total per request),\n' +
      'CACHE_TYPE_ROUTING_THRESHOLD (51200 bytes of message text; larger requests go to cache_type "static").\n' +
      'Local endpoints: GET /health (/status), /stats, /services, /models, /v1/models, /metrics; everything else is proxied.',
  };
}

/** Parses `32MiB`, `512KiB`, `1048576`, `1MB`. */
export function parseBytes(text: string, key: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`--${key}: expected a size such as 1048576, 512KiB or 32MiB, got '${text}'`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit.startsWith('g') ? 1024 ** 3 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('k') ? 1024 : 1;
  return Math.floor(Number(m[1]) * mult);
}

function envSeconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`environment ${name}: expected a positive number of seconds, got '${raw}'`);
  return n;
}

function envInt(name: string, fallback: number): number {
  const n = Number(process.env[name]);
  return process.env[name] && Number.isFinite(n) && n >= 0 ? n : fallback;
}

export function main(argv: string[], name = 'infini-svc router'): Promise<void> {
  return runCommand(name, async () => {
    const spec = routerSpec(name);
    const { values, given } = parseCommand(spec, argv);
    let unknownKeys: string[] = [];
    if (values.config) {
      const types = Object.fromEntries(Object.entries(spec.options).map(([k, o]) => [k, o.type]));
      unknownKeys = mergeFlagFile(String(values.config), values as OptionValues, given, types).unknown;
    }
    const log = createLogger('router', String(values['log-level']));
    if (unknownKeys.length) log.warn({ file: values.config, keys: unknownKeys }, 'ignoring unknown keys in config file');

    const seconds = (key: string) => numberOption(values, key, { min: 0.01, max: 86_400 * 365 }) * 1000;
    const port = portOption(values, 'router-port');
    const host = String(values.host);
    const registryUrl = (values['registry-url'] as string | undefined)?.replace(/\/+$/, '') || null;
    const totalTimeoutMs = envSeconds('PROXY_TIMEOUT_SECONDS', 1800) * 1000;
    const sizeThresholdBytes = envInt('CACHE_TYPE_ROUTING_THRESHOLD', 51_200);
    const policyName = String(values.policy);
    if (!POLICIES[policyName]) throw new UsageError(`--policy: unknown policy '${policyName}' (expected one of ${Object.keys(POLICIES).join(', ')})`);
    const maxErrors = numberOption(values, 'max-errors', { integer: true, min: 1, max: 1000 });
    const errorFormat = String(values['error-format']) as ErrorFormat;
    if (!ERROR_FORMATS.includes(errorFormat)) throw new UsageError(`--error-format: expected one of ${ERROR_FORMATS.join(', ')}, got '${errorFormat}'`);
    const workers = numberOption(values, 'workers', { integer: true, min: 1, max: 256 });
    if (workers > 1 && isPrimary) {
      if (values['static-services']) loadStaticServices(String(values['static-services'])); // refuse a bad file before forking
      runPrimary(workers, log, { drainMs: seconds('drain-timeout') });
      return;
    }

    const backends = new BackendSet({
      connectTimeoutMs: seconds('connect-timeout'),
      headersTimeoutMs: totalTimeoutMs,
      idleTimeoutMs: seconds('idle-timeout'),
    });
    if (values['static-services']) for (const s of loadStaticServices(String(values['static-services']))) backends.upsert(s);
    if (!registryUrl && backends.size === 0) log.warn('no --registry-url and no --static-services: every request will get 503');

    const policy = createPolicy(policyName, { sizeThresholdBytes });
    backends.onChange((all) => policy.onBackendsChanged?.(all));
    policy.onBackendsChanged?.(backends.all);
    const errors = new RouterErrors(errorFormat);
    const proxy = new RequestForwarder(backends, policy, { maxErrors, maxAttempts: 3, totalTimeoutMs, errors, log });
    const metrics = new RouterMetrics(backends, () => proxy.inFlight, errors.counts);
    const api = new RouterServer({
      backends,
      proxy,
      errors,
      metrics,
      registryUrl,
      maxBodyBytes: parseBytes(String(values['max-body']), 'max-body'),
      maxBufferedBytes: parseBytes(String(values['max-buffered']), 'max-buffered'),
      maxConnections: numberOption(values, 'max-connections', { integer: true, min: 1 }),
      log,
    });
    const checker = new HealthChecker(backends, seconds('health-interval'), seconds('health-timeout'), log);
    const watcher = registryUrl
      ? new RegistryWatcher(registryUrl, backends, {
          syncIntervalMs: seconds('registry-sync-interval'),
          graceMs: seconds('service-removal-grace-period'),
          token: values['registry-token'] as string | undefined,
          log,
        })
      : undefined;

    const bound = await listen(api.server, port, host, name);
    // stoppable from here on, also while the first registry listing is still under way
    const drainMs = seconds('drain-timeout');
    const stop = onShutdownSignal(log, async () => {
      await watcher?.stop();
      await checker.stop();
      await api.close(drainMs);
      proxy.close();
      await backends.closeAll();
      log.info('router stopped');
    });
    if (!isPrimary) onPrimaryStop(stop);
    await watcher?.start();
    checker.start();
    log.info({ port: bound, host, registry_url: registryUrl, static_services: backends.all.filter((b) => b.isStatic).length, policy: policyName }, 'router listening');
  });
}
