import type { ServiceSpec } from '../common/settings.js';
import { LOCAL_BIND } from './cluster-file.js';

/** Every setting of `infini-svc up` (its cluster file is not a settings file: see cluster-file.ts). */
export function upSpec(name = 'infini-svc up'): ServiceSpec {
  return {
    name,
    service: 'up',
    configFlag: null,
    summary: 'Brings up a whole local cluster (registry, router, babysitters) from one cluster file.',
    settings: [
      { key: 'file', type: 'string', short: 'f', defaultText: 'the embedded default (3 mocks)', metavar: 'FILE', help: 'cluster file (TOML)' },
      { key: 'data-dir', type: 'string', default: '.infini', metavar: 'DIR', help: 'registry state, generated configs and logs' },
      { key: 'wait-timeout', type: 'number', default: 1800, min: 1, max: 86_400, metavar: 'SECONDS', help: 'how long to wait for every backend to be routable' },
      { key: 'heartbeat-interval', type: 'number', default: 5, min: 0.1, max: 3600, metavar: 'SECONDS', help: 'heartbeat of inline babysitters that set none' },
      { key: 'bind', type: 'string', default: LOCAL_BIND, env: 'INFINI_UP_BIND', metavar: 'ADDR', help: 'address of every service whose section sets none (registry/router host, babysitter bind); 0.0.0.0 exposes them' },
      { key: 'api-keys', type: 'string', metavar: 'FILE', help: "the router's client API key file (its --api-keys; see examples/api-keys.toml); up uses a key of its own to watch the router" },
      { key: 'print-default', type: 'boolean', help: 'print the embedded default cluster file and exit' },
    ],
    epilog:
      'Environment of the original launch scripts is honoured: REGISTRY_PORT, ROUTER_PORT, REGISTRY_URL, ROUTER_REGISTRY_URL,\n' +
      'REGISTRY_HEALTH_INTERVAL, REGISTRY_HEALTH_TIMEOUT, REGISTRY_CLEANUP_INTERVAL, ROUTER_HEALTH_INTERVAL, ROUTER_HEALTH_TIMEOUT,\n' +
      'ROUTER_REGISTRY_SYNC_INTERVAL, BABYSITTER_CONFIGS (names under config/), BABYSITTER_HOST, BABYSITTER_REGISTRY_URL,\n' +
      'BABYSITTER_ROUTER_URL, ROUTER_URL, LAUNCH_COMPONENTS (all | none | babysitter | registry,router,babysitter).\n' +
      'Ctrl-C stops the router first (in-flight requests finish within its drain timeout), then the babysitters and their\n' +
      'backends, then the registry; a second Ctrl-C kills everything at once. If up itself is killed, every service stops too.',
  };
}
