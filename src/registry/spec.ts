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
      ...tlsSettings('registry'),
      { key: 'auth-token', type: 'string', env: 'INFINI_REGISTRY_TOKEN', secret: true, metavar: 'TOKEN', help: 'require Authorization: Bearer TOKEN on mutating calls' },
    ],
    epilog: 'Endpoints: GET /health, GET|POST /services, GET|PUT|DELETE /services/{name},\nGET /services/{name}/health, POST /services/{name}/heartbeat, GET /stats, GET /events?since=N, GET /metrics,\nGET /prometheus/targets (Prometheus http_sd)',
  };
}
