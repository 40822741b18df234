import { resolve } from 'node:path';
import { numberOption, parseCommand, portOption, runCommand, type CommandSpec } from '../common/command.js';
import { listen } from '../common/listen.js';
import { createLogger } from '../common/log.js';
import { onShutdownSignal } from '../common/shutdown.js';
import { EmbeddedStore } from './embedded-store.js';
import { HealthProber } from './health-prober.js';
import { RegistryServer } from './server.js';
import { StaleReaper } from './stale-reaper.js';
import { StateFile } from './state-file.js';

export function registrySpec(name: string): CommandSpec {
  return {
    name,
    summary: 'Service registry: backends register and heartbeat; routers list and watch them.',
    options: {
      port: { type: 'string', default: '8081', metavar: 'PORT', help: 'listen port (0 picks a free one)' },
      host: { type: 'string', default: '0.0.0.0', metavar: 'ADDR', help: 'bind address' },
      'health-interval': { type: 'string', default: '30', metavar: 'SECONDS', help: 'period of background health probes' },
      'health-timeout': { type: 'string', default: '5', metavar: 'SECONDS', help: 'timeout of each health probe' },
      'cleanup-interval': { type: 'string', default: '60', metavar: 'SECONDS', help: 'period of the stale-service cleanup' },
      'heartbeat-timeout': { type: 'string', default: '120', metavar: 'SECONDS', help: 'a service without a heartbeat this long is unhealthy' },
      'stale-timeout': { type: 'string', default: '300', metavar: 'SECONDS', help: 'a service without a heartbeat this long is removed' },
      'state-file': { type: 'string', default: 'infini-registry-state.json', metavar: 'PATH', help: 'where registrations are persisted' },
      'no-persist': { type: 'boolean', help: 'keep registrations in memory only' },
      'auth-token': { type: 'string', env: 'INFINI_REGISTRY_TOKEN', metavar: 'TOKEN', help: 'require Authorization: Bearer TOKEN on mutating calls' },
    },
    epilog: 'Endpoints: GET /health, GET|POST /services, GET|PUT|DELETE /services/{name},\nGET /services/{name}/health, POST /services/{name}/heartbeat, GET /stats, GET /events?since=N',
  };
}

export function main(argv: string[], name = 'infini-svc registry'): Promise<void> {
  return runCommand(name, async () => {
    const { values } = parseCommand(registrySpec(name), argv);
    const port = portOption(values, 'port');
    const host = String(values.host);
    const seconds = (key: string) => numberOption(values, key, { min: 0.01, max: 86_400 * 365 }) * 1000;
    const healthIntervalMs = seconds('health-interval');
    const healthTimeoutMs = seconds('health-timeout');
    const cleanupIntervalMs = seconds('cleanup-interval');
    const heartbeatTimeoutMs = seconds('heartbeat-timeout');
    const staleTimeoutMs = seconds('stale-timeout');
    const log = createLogger('registry', String(values['log-level']));

    const stateFile = values['no-persist'] ? undefined : new StateFile(resolve(String(values['state-file'])), log);
    const store = new EmbeddedStore({ heartbeatTimeoutMs, maxHoldMs: staleTimeoutMs, stateFile, log });
    const restored = await store.open();
    const prober = new HealthProber(store, healthIntervalMs, healthTimeoutMs, log);
    const reaper = new StaleReaper(store, { cleanupIntervalMs, staleTimeoutMs, healthCheckEveryMs: Math.min(1000, heartbeatTimeoutMs / 4) }, log);
    const api = new RegistryServer({ store, prober, authToken: values['auth-token'] as string | undefined, log });

    const bound = await listen(api.server, port, host, name);
    prober.start();
    reaper.start();
    log.info({ port: bound, host, state_file: stateFile?.path ?? null, restored, auth: Boolean(values['auth-token']) }, 'registry listening');

    onShutdownSignal(log, async () => {
      await Promise.all([api.close(), prober.stop(), reaper.stop()]);
      await store.close();
      log.info('registry stopped');
    });
  });
}
