import type { ServiceSpec } from '../common/settings.js';
import { DEFAULT_REGISTRY_PORT, DEFAULT_ROUTER_PORT } from '../up/cluster-file.js';

/** `--watch` given without a value redraws this often (seconds). */
export const WATCH_DEFAULT_SECONDS = 2;

/** Every setting of `infini-svc status`. */
export function statusSpec(name = 'infini-svc status'): ServiceSpec {
  return {
    name,
    service: 'status',
    configFlag: null,
    summary: 'Shows every service of a local cluster (registry, router, babysitters and their backends) as a table.',
    settings: [
      { key: 'registry-url', type: 'string', default: `http://127.0.0.1:${DEFAULT_REGISTRY_PORT}`, metavar: 'URL', help: "the registry whose babysitter records list the cluster's babysitters" },
      { key: 'router-url', type: 'string', default: `http://127.0.0.1:${DEFAULT_ROUTER_PORT}`, metavar: 'URL', help: 'the router (its /stats gives in-flight requests per backend)' },
      { key: 'ca-file', type: 'string', metavar: 'FILE', help: 'trust the CA certificates in this PEM file for https:// URLs (registry, router), besides the usual roots and NODE_EXTRA_CA_CERTS' },
      { key: 'file', type: 'string', short: 'f', metavar: 'CLUSTER', help: 'take the registry, router and babysitter ports from this cluster file (as `up` would start it) instead' },
      { key: 'api-key', type: 'string', env: 'INFINI_API_KEY', secret: true, metavar: 'KEY', help: "an admin API key for a router that requires keys (its /stats and the dashboard's data)" },
      { key: 'json', type: 'boolean', help: 'print the rows as JSON, for scripts' },
      { key: 'watch', type: 'number', min: 0.1, max: 3600, metavar: 'SECONDS', help: `redraw every SECONDS (${WATCH_DEFAULT_SECONDS} when given without a value) until Ctrl-C` },
    ],
    epilog: 'A service that does not answer shows as `down`. Exit status: 0 when every service answered, 1 when one is down.',
  };
}
