import { httpUrl } from '../common/address.js';
import { parseCommand, runCommand, type CommandSpec } from '../common/command.js';
import { listen } from '../common/listen.js';
import { createLogger } from '../common/log.js';
import { RegistryClient } from '../registry/client.js';
import type { Registration } from '../registry/record.js';
import { RegistrationKeeper } from '../registry/registration-keeper.js';
import { onShutdownSignal } from '../common/shutdown.js';
import { buildCommandLine } from './command-line.js';
import { BACKEND_TYPES, resolveConfig, type BabysitterConfig } from './config.js';
import type { ModelObject } from './probes.js';
import { BabysitterServer } from './server.js';
import { Supervisor } from './supervisor.js';

export function babysitterSpec(name: string): CommandSpec {
  const s = (help: string, metavar = 'VALUE') => ({ type: 'string' as const, metavar, help });
  return {
    name,
    summary: 'Supervises one inference server: starts, probes, restarts it, and keeps it registered.',
    options: {
      'config-file': s('TOML file (name, host, port, registry_url, [babysitter], [backend], [metadata])', 'FILE'),
      name: s('service name (default: <type>-<port>)', 'NAME'),
      host: s('host advertised to the registry (default: localhost)', 'HOST'),
      bind: s('bind address of the babysitter (port+1) and of preset backends (default: 0.0.0.0)', 'ADDR'),
      port: s('backend port; the babysitter listens on port+1', 'PORT'),
      'service-type': s(`backend type: ${Object.keys(BACKEND_TYPES).join(', ')} (default: command)`, 'TYPE'),
      command: s('program and leading arguments (forces type command)', 'CMD'),
      args: { ...s('extra arguments, split like a shell (for mock: the comma-separated models)', 'ARGS'), dashValue: true },
      path: s('model path (vllm, sglang, llama.cpp, infinilm) or config file (infinilm-rust)', 'PATH'),
      models: s('comma-separated model ids the backend serves (for backends without a models endpoint)', 'LIST'),
      'launch-script': s('InfiniLM launch script (default: launch_server.py in --work-dir)', 'FILE'),
      'work-dir': s('working directory of the backend', 'DIR'),
      env: { type: 'string', multiple: true, dashValue: true, metavar: 'K=V', help: 'environment for the backend ("K=V K2=V2" also accepted)' },
      'registry-url': s('register with this registry and heartbeat', 'URL'),
      'registry-token': { ...s('bearer token for the registry', 'TOKEN'), env: 'INFINI_REGISTRY_TOKEN' },
      'router-url': s('accepted for compatibility, unused', 'URL'),
      'max-restarts': s('restarts before the backend is reported failed (default 10000)', 'N'),
      'restart-delay': s('first restart delay, doubling per consecutive failure (default 5)', 'SECONDS'),
      'max-restart-delay': s('longest restart delay (default 300)', 'SECONDS'),
      'heartbeat-interval': s('registry heartbeat period (default 30)', 'SECONDS'),
      'startup-timeout': s('a start not ready by then counts as failed (default 1200)', 'SECONDS'),
      'liveness-interval': s('probe period while ready (default 30)', 'SECONDS'),
      'liveness-timeout': s('timeout of one liveness probe (default 10)', 'SECONDS'),
      'liveness-failures': s('consecutive failed probes that mean hung (default 3)', 'N'),
      'readiness-interval': s('while ready, /health probe period; one failure = not routable until one passes (default 5)', 'SECONDS'),
      'readiness-timeout': s('timeout of one readiness probe (default 5)', 'SECONDS'),
      'stop-grace': s('SIGTERM to SIGKILL grace when stopping the backend (default 30)', 'SECONDS'),
      dev: s('accepted for compatibility, unused'),
      ndev: s('accepted for compatibility, unused'),
      'max-batch': s('accepted for compatibility, unused'),
    },
    epilog: 'Endpoints on port+1: GET /health (200 only while the backend is ready, else 503), /models, /info.',
  };
}

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
    const { values, given } = parseCommand(babysitterSpec(name), argv);
    const cfg = resolveConfig(values, given);
    const log = createLogger('babysitter', String(values['log-level'])).child({ name: cfg.name });
    if (cfg.unknownKeys.length) log.warn({ file: cfg.configFile, keys: cfg.unknownKeys }, 'ignoring unknown keys in config file');
    const cmd = buildCommandLine(cfg);

    const keeper = cfg.registryUrl ? new RegistrationKeeper(new RegistryClient(cfg.registryUrl, cfg.registryToken), cfg.heartbeatIntervalMs, log) : undefined;
    const serverName = `${cfg.name}-server`;
    const supervisor = new Supervisor(cfg, cmd, log, {
      onReady: (models) => void keeper?.set(serverRecord(cfg, models)),
      // not ready = registered but not "running": the registry's feed makes routers skip it at once
      onReadiness: (ready) => void keeper?.setStatus(serverName, ready ? 'running' : 'not-ready'),
      // nothing may route to a backend that is down: its record goes at once
      onDown: () => void keeper?.remove(serverName),
    });
    const api = new BabysitterServer(cfg, cmd, supervisor);
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
