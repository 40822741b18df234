import { httpUrl } from '../common/address.js';
import { runCommand } from '../common/command.js';
import { listen } from '../common/listen.js';
import { createLogger } from '../common/log.js';
import { resolveSettings } from '../common/settings.js';
import { trustCaFile } from '../common/client-tls.js';
import { RegistryClient } from '../registry/client.js';
import type { Registration } from '../registry/record.js';
import { RegistrationKeeper } from '../registry/registration-keeper.js';
import { onShutdownSignal } from '../common/shutdown.js';
import { buildCommandLine } from './command-line.js';
import { BACKEND_TYPES, babysitterConfig, type BabysitterConfig } from './config.js';
import type { ModelObject } from './probes.js';
import { BabysitterMetrics } from './metrics.js';
import { BabysitterServer } from './server.js';
import { babysitterSpec } from './spec.js';
import { Supervisor } from './supervisor.js';

export { babysitterSpec };

function babysitterRecord(cfg: BabysitterConfig): Registration {
  return {
    name: cfg.name,
    host: cfg.host,
    hostname: cfg.host,
    port: cfg.port + 1,
    url: httpUrl(cfg.host, cfg.port + 1),
    status: 'running',
    metadata: { type: BACKEND_TYPES[cfg.backend.type], babysitter: 'enhanced' },
  };
}

/** The routable record of the backend: config [metadata] is merged over the generated keys. */
function serverRecord(cfg: BabysitterConfig, models: ModelObject[]): Registration {
  return {
    name: `${cfg.name}-server`,
    host: cfg.host,
    hostname: cfg.host,
    port: cfg.port,
    url: httpUrl(cfg.host, cfg.port),
    status: 'running',
    metadata: {
      type: 'openai-api',
      parent_service: cfg.name,
      babysitter: 'enhanced',
      models: models.map((m) => m.id),
      models_list: models,
      ...cfg.metadata,
    },
  };
}

export function main(argv: string[], name = 'infini-svc babysitter'): Promise<void> {
  return runCommand(name, async () => {
    const settings = resolveSettings(babysitterSpec(name), argv);
    const cfg = babysitterConfig(settings);
    const log = createLogger('babysitter', settings.str('log-level')).child({ name: cfg.name });
    const cmd = buildCommandLine(cfg);
    trustCaFile(settings.optStr('registry-ca'));

    const keeper = cfg.registryUrl ? new RegistrationKeeper(new RegistryClient(cfg.registryUrl, cfg.registryToken), cfg.heartbeatIntervalMs, log) : undefined;
    const serverName = `${cfg.name}-server`;
    const supervisor = new Supervisor(cfg, cmd, log, {
      onReady: (models) => void keeper?.set(serverRecord(cfg, models)),
      // not ready = registered but not "running": the registry's feed makes routers skip it at once
      onReadiness: (ready) => void keeper?.setStatus(serverName, ready ? 'running' : 'not-ready'),
      // nothing may route to a backend that is down: its record goes at once
      onDown: () => void keeper?.remove(serverName),
    });
    const api = new BabysitterServer(cfg, cmd, supervisor, new BabysitterMetrics(cfg.name, supervisor, keeper));
    const port = await listen(api.server, cfg.port + 1, cfg.bind, name);
    log.info({ port, backend_port: cfg.port, type: cfg.backend.type, registry_url: cfg.registryUrl ?? null }, 'babysitter listening');

    let stopping = false;
    onShutdownSignal(log, async () => {
      stopping = true;
      // Routers stop sending new requests at once (status), while the backend finishes the ones it
      // has during its stop grace; deregistering first would make routers take it for dead and
      // retry those requests elsewhere. The record goes once the backend has stopped.
      await keeper?.setStatus(serverName, 'stopping');
      await supervisor.stop();
      await keeper?.stop();
      await new Promise<void>((resolve) => {
        api.server.close(() => resolve());
        api.server.closeAllConnections();
      });
      log.info('babysitter stopped');
    });
    if (stopping) return;
    supervisor.start();
    void keeper?.set(babysitterRecord(cfg));
  });
}
