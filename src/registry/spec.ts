import type { Setting, ServiceSpec } from '../common/settings.js';
import { tlsSettings } from '../common/tls-files.js';

const seconds = (key: string, def: number, help: string): Setting => ({ key, type: 'number', default: def, min: 0.01, max: 86_400 * 365, metavar: 'SECONDS', help });

/** Every setting of the registry. */
export function registrySpec(name = 'infini-svc registry'): ServiceSpec {
  return {
    name,
    service: 'registry',
    summary: 'Service registry: backends register and heartbeat; routers list and watch them.',
    settings: [
      { key: 'port', type: 'port', default: 8081, metavar: 'PORT', help: 'listen port (0 picks a free one)' },
      { key: 'host', type: 'string', default: '0.0.0.0', metavar: 'ADDR', help: 'bind address' },
      seconds('health-interval', 30, 'period of background health probes'),
      seconds('health-timeout', 5, 'timeout of each health probe'),
      { key: 'health-concurrency', type: 'integer', default: 128, min: 1, max: 10_000, metavar: 'N', help: 'health probes under way at once; each service is probed once per interval, at its own point in it' },
      seconds('cleanup-interval', 60, 'period of the stale-service cleanup'),
      seconds('heartbeat-timeout', 120, 'a service without a heartbeat this long is unhealthy'),
      seconds('stale-timeout', 300, 'a service without a heartbeat this long is removed'),
      { key: 'state-file', type: 'string', default: 'infini-registry-state.json', metavar: 'PATH', help: 'where registrations are persisted' },
      { key: 'no-persist', type: 'boolean', help: 'keep registrations in memory only' },
      { key: 'allow-networks', type: 'list', metavar: 'CIDRS', help: 'service addresses (url and host) must be in these blocks (comma-separated, IPv4 and IPv6); default: any address the built-in rules allow (loopback and private included)' },
      { key: 'deny-networks', type: 'list', metavar: 'CIDRS', help: 'service addresses in these blocks are refused (wins over --allow-networks); link-local, cloud metadata, unspecified, multicast and broadcast addresses are always refused' },
      { key: 'max-services', type: 'integer', default: 200_000, min: 1, metavar: 'N', help: 'records in all; registering a new name beyond it gets 429' },
      { key: 'rate-limit', type: 'number', default: 2_000, min: 0, metavar: 'RPS', help: 'requests per second per client address, heartbeats and /health apart (0: no limit); over it, 429 with Retry-After' },
      { key: 'heartbeat-rate-limit', type: 'number', default: 20_000, min: 0, metavar: 'RPS', help: 'heartbeats per second per client address, a budget of their own so that other traffic never starves them (0: no limit)' },
      { key: 'rate-burst', type: 'integer', default: 60_000, min: 1, metavar: 'N', help: 'requests a client may send above its rate at once (each budget); the default lets one client register a fleet of 50,000 at full speed' },
      ...tlsSettings('registry'),
      { key: 'auth-token', type: 'string', env: 'INFINI_REGISTRY_TOKEN', secret: true, metavar: 'TOKEN', help: 'require Authorization: Bearer TOKEN on mutating calls (register, update, heartbeat, deregister)' },
    ],
    epilog: 'Endpoints: GET /health, GET|POST /services, GET|PUT|DELETE /services/{name},\nGET /services/{name}/health, POST /services/{name}/heartbeat, GET /stats, GET /events?since=N, GET /metrics,\nGET /prometheus/targets (Prometheus http_sd)',
  };
}
