import type { Setting, ServiceSpec } from '../common/settings.js';
import { QUEUE_DEFAULTS } from './admission.js';
import { registryCaSetting, tlsSettings } from '../common/tls-files.js';
import { ERROR_FORMATS } from './errors.js';
import { POLICIES } from './policies/index.js';

/** The drop-in binary answers errors exactly as the original did; `infini-svc router` as OpenAI does. */
export const COMPAT_BINARY = 'infini-router';

const seconds = (key: string, def: number, help: string, env?: string): Setting => ({ key, type: 'number', default: def, min: 0.01, max: 86_400 * 365, metavar: 'SECONDS', help, ...(env ? { env } : {}) });

/** Every setting of the router; `name` decides the error format's default (see COMPAT_BINARY). */
export function routerSpec(name = 'infini-svc router'): ServiceSpec {
  return {
    name,
    service: 'router',
    summary: 'OpenAI-compatible router: model-aware load balancing over inference backends, with streaming.',
    settings: [
      { key: 'router-port', type: 'port', default: 8080, metavar: 'PORT', help: 'listen port (0 picks a free one)' },
      { key: 'host', type: 'string', default: '0.0.0.0', metavar: 'ADDR', help: 'bind address' },
      { key: 'registry-url', type: 'string', metavar: 'URL', help: 'discover backends from this registry' },
      { key: 'registry-token', type: 'string', env: 'INFINI_REGISTRY_TOKEN', secret: true, metavar: 'TOKEN', help: 'bearer token for the registry' },
      { key: 'allow-networks', type: 'list', metavar: 'CIDRS', help: 'connect only to backends from the registry whose addresses (as resolved at connect time) are in these blocks (comma-separated, IPv4 and IPv6)' },
      { key: 'deny-networks', type: 'list', metavar: 'CIDRS', help: 'never connect to backends from the registry at addresses in these blocks (wins over --allow-networks); link-local, cloud metadata, unspecified, multicast and broadcast addresses are always refused. Static services are not checked' },
      registryCaSetting,
      { key: 'static-services', type: 'string', metavar: 'FILE', help: 'JSON file of static backends' },
      seconds('health-interval', 30, "period of the router's own backend checks"),
      seconds('health-timeout', 5, 'timeout of one check'),
      { key: 'health-concurrency', type: 'integer', default: 128, min: 1, max: 10_000, metavar: 'N', help: 'health checks under way at once; each backend is checked once per interval, at its own point in it' },
      { key: 'max-errors', type: 'integer', default: 3, min: 1, max: 1000, metavar: 'N', help: 'consecutive failed attempts that eject a backend (30 s, doubling to 5 min)' },
      seconds('registry-sync-interval', 10, 'poll period for a registry without a change feed'),
      seconds('service-removal-grace-period', 60, 'how long a backend missing from the registry is kept'),
      seconds('connect-timeout', 5, 'upstream connect timeout'),
      seconds('idle-timeout', 300, 'longest silence between streamed chunks'),
      seconds('proxy-timeout', 1800, 'longest wait for response headers, and longest request in all', 'PROXY_TIMEOUT_SECONDS'),
      { key: 'cache-type-threshold', type: 'integer', default: 51_200, min: 0, metavar: 'BYTES', env: 'CACHE_TYPE_ROUTING_THRESHOLD', help: 'message text larger than this goes to cache_type "static" backends, the rest to "paged"' },
      { key: 'policy', type: 'string', default: 'round-robin', choices: Object.keys(POLICIES), metavar: 'NAME', help: `balancing policy: ${Object.keys(POLICIES).join(', ')} (the default for models the config file's [policies] section does not name)` },
      { key: 'policy-param', type: 'map', multiple: true, metavar: 'KEY=VALUE', help: 'a parameter of --policy (cache-aware: threshold, balance_abs_threshold, balance_rel_threshold, max_chars; cache-load: w_prefix, w_load, w_queue, w_kv, load_scale, queue_scale, max_chars)' },
      {
        key: 'policies',
        type: 'table',
        fileOnly: true,
        fileKeys: ['policies'],
        help: 'a policy per model: [policies."NAME-OR-GLOB"] with policy = "cache-aware" and its parameters; exact names first, then globs (* and ?) in file order, else --policy',
      },
      {
        key: 'engine-metrics-interval',
        type: 'number',
        default: 0,
        min: 0,
        max: 3600,
        metavar: 'SECONDS',
        help: "poll each backend's /metrics this often for its engine's waiting requests and KV usage, scored by cache-load (0: off; only backends of models routed by cache-load are polled)",
      },
      {
        key: 'backend-max-concurrency',
        type: 'integer',
        default: 0,
        min: 0,
        max: 1_000_000,
        metavar: 'N',
        help: "requests in flight per backend at most, for backends whose registration gives no metadata.max_concurrency (0: unlimited); a backend at its limit is no candidate, and when all of a model's are, requests wait in the model's queue; with --workers W each process allows ceil(N / W)",
      },
      {
        key: 'max-concurrency',
        type: 'table',
        fileOnly: true,
        fileKeys: ['max_concurrency'],
        help: 'a limit per backend: [max_concurrency] with "NAME-OR-GLOB" = N (0: unlimited); before metadata.max_concurrency and --backend-max-concurrency; exact names first, then globs in file order',
      },
      { key: 'queue-size', type: 'integer', default: QUEUE_DEFAULTS.queueSize, min: 0, max: 1_000_000, metavar: 'N', help: 'requests waiting per model when every backend of the model is at its limit (higher priority first, then first come first served); beyond it 503 queue_full at once (0: no waiting)' },
      seconds('queue-timeout', QUEUE_DEFAULTS.timeoutMs / 1000, 'longest wait in the queue; then 503 queue_timeout with Retry-After'),
      { key: 'queue-max-bytes', type: 'bytes', default: QUEUE_DEFAULTS.maxBytes, min: 1, metavar: 'BYTES', help: 'request body bytes held by waiting requests of all models together; beyond it 503 queue_full at once' },
      { key: 'max-body', type: 'bytes', default: 32 * 1024 ** 2, min: 1, metavar: 'BYTES', help: 'largest request body (suffixes KiB, MiB)' },
      { key: 'max-buffered', type: 'bytes', default: 1024 ** 3, min: 1, metavar: 'BYTES', help: 'request body bytes held for all connections together; beyond it, connections still sending a body wait' },
      { key: 'max-connections', type: 'integer', default: 16_384, min: 1, metavar: 'N', help: 'cap on client connections' },
      seconds('drain-timeout', 30, 'how long shutdown waits for in-flight requests'),
      {
        key: 'error-format',
        type: 'string',
        default: name === COMPAT_BINARY ? 'original' : 'openai',
        choices: ERROR_FORMATS,
        env: 'ROUTER_ERROR_FORMAT',
        metavar: 'FORMAT',
        help: `errors the router produces: openai (OpenAI's shape; unknown model 404) or original (the original's codes and {"error": "..."} strings; default of ${COMPAT_BINARY})`,
      },
      {
        key: 'request-log',
        type: 'string',
        default: 'off',
        env: 'ROUTER_REQUEST_LOG',
        metavar: 'WHERE',
        help: 'one JSON line per proxied request (id, model, backend, status, attempts, bytes, TTFT, duration, client, how it ended; never bodies or headers): off, stdout, or a file path (appended to; SIGHUP reopens it, for logrotate). `up` turns it on (stdout, so in the router\'s log file)',
      },
      ...tlsSettings('router'),
      {
        key: 'api-keys',
        type: 'string',
        metavar: 'FILE',
        help:
          'client API keys (TOML; JSON if FILE ends in .json): [[keys]] with name, key_sha256 (or key), models (globs), scope (client or admin), rpm, tpm, max_parallel_requests, priority; reloaded when it changes and on SIGHUP. The environment variable INFINI_API_KEYS adds keys (comma-separated, client scope, or JSON). With neither the router is open; with either every request needs a key (Authorization: Bearer or x-api-key) and /stats, /services and the dashboard\'s data an admin key. See examples/api-keys.toml',
      },
      { key: 'api-keys-poll', type: 'number', default: 1, min: 0, max: 3600, metavar: 'SECONDS', help: 'how often the --api-keys file is checked for changes (0: only SIGHUP reloads it)' },
      { key: 'metrics-auth', type: 'boolean', help: '/metrics needs an admin key too (when keys are configured; Prometheus sends one with `authorization` in its scrape config)' },
      { key: 'workers', type: 'integer', default: 1, min: 1, max: 256, metavar: 'N', help: 'router processes sharing the port (each balances on its own; /metrics is aggregated, /stats is per worker; per-key limits are kept by the primary for all of them)' },
    ],
    epilog:
      'Local endpoints: GET /health (/status), /stats, /services, /models, /v1/models, /metrics, /dashboard; everything else is proxied.\n' +
      'With API keys: /health and the dashboard page are open, /metrics too unless --metrics-auth; /models lists what the key may use.',
  };
}
