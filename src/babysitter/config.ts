import { advertisedHost, httpUrl, localHost } from '../common/address.js';
import { UsageError } from '../common/command.js';
import type { Settings } from '../common/settings.js';
import { BACKEND_TYPES, parseBackendType, type BackendType } from './backend-types.js';

export { BACKEND_TYPES, parseBackendType, type BackendType };

export interface BackendConfig {
  type: BackendType;
  /** Program plus leading arguments for `command` (and the program for llama.cpp). */
  command?: string;
  /** Extra arguments, passed as they are. */
  args: string[];
  workDir?: string;
  env: Record<string, string>;
  /** Model path/id for vllm, sglang, llama.cpp. */
  model?: string;
  /** InfiniLM: model path and launch script. */
  modelPath?: string;
  launchScript?: string;
  /** InfiniLM-Rust: service config file. */
  configFile?: string;
  /** Model ids: served by `mock`; declared for backends without a models endpoint. */
  models?: string[];
}

export interface BabysitterConfig {
  name: string;
  /** Address advertised to the registry (--advertise-host, else --host; the machine's name for 0.0.0.0). */
  host: string;
  /** Address the babysitter's own HTTP server binds, and presets tell the backend to bind (--host). */
  bind: string;
  port: number;
  /** Where the babysitter itself reaches its backend (loopback for a wildcard bind). */
  backendUrl: string;
  registryUrl?: string;
  registryToken?: string;
  maxRestarts: number;
  restartDelayMs: number;
  maxRestartDelayMs: number;
  heartbeatIntervalMs: number;
  startupTimeoutMs: number;
  livenessIntervalMs: number;
  livenessTimeoutMs: number;
  livenessFailures: number;
  /** While ready: period and timeout of the readiness probe (a failure = not routable). */
  readinessIntervalMs: number;
  readinessTimeoutMs: number;
  stopGraceMs: number;
  backend: BackendConfig;
  metadata: Record<string, unknown>;
  configFile?: string;
}

/**
 * The babysitter's configuration from its settings (flags > environment > config file > defaults;
 * see spec.ts), with the checks that span several settings: what each backend type requires.
 */
export function babysitterConfig(settings: Settings): BabysitterConfig {
  const port = settings.optNum('port');
  if (port === undefined) throw new UsageError(settings.file ? `${settings.where('port')}: required` : '--port is required when --config-file is not provided');
  let type: BackendType = parseBackendType(settings.str('service-type'), settings.where('service-type'));
  if (settings.source('command') === 'flag') type = 'command';
  let args = settings.list('args') ?? [];
  let models = settings.list('models');
  // compatible: for the mock, --args is the comma-separated model list
  if (type === 'mock' && settings.source('args') === 'flag' && args.length === 1 && !args[0]!.startsWith('-')) {
    models = args[0]!.split(',').map((m) => m.trim()).filter(Boolean);
    args = [];
  }
  const path = settings.optStr('path');
  const backend: BackendConfig = {
    type,
    command: settings.optStr('command'),
    args,
    workDir: settings.optStr('work-dir'),
    env: settings.map('env'),
    model: path,
    modelPath: path,
    launchScript: settings.optStr('launch-script'),
    configFile: path,
    models,
  };
  const where = (key: string) => settings.where(key);
  if (type === 'command' && !backend.command) throw new UsageError(`${where('command')}: required for backend type 'command'`);
  if ((type === 'vllm' || type === 'sglang' || type === 'llama.cpp') && !path) throw new UsageError(`${where('path')}: a model is required for backend type '${type}'`);
  if (type === 'infinilm' && !path) throw new UsageError(`${where('path')}: required for backend type 'infinilm'`);
  if (type === 'infinilm-rust' && !path) throw new UsageError(`${where('path')}: required for backend type 'infinilm-rust'`);
  if (type === 'mock' && (!models || models.length === 0)) throw new UsageError(`${where(settings.source('args') === 'flag' ? 'args' : 'models')}: a model list is required for backend type 'mock'`);

  const name = settings.optStr('name') ?? `${BACKEND_TYPES[type].toLowerCase().replace(/\s+/g, '-')}-${port}`;
  if (!/^[A-Za-z0-9._:-]{1,245}$/.test(name)) throw new UsageError(`${where('name')}: '${name}' must be 1-245 characters of A-Z a-z 0-9 . _ : -`);
  const host = settings.str('host');
  // --bind (earlier versions) binds elsewhere and leaves --host advertised only
  const bind = settings.optStr('bind') ?? (host === 'localhost' ? '127.0.0.1' : host);
  const ms = (key: string) => settings.num(key) * 1000;
  return {
    name,
    host: advertisedHost(host, settings.optStr('advertise-host')),
    bind,
    port,
    backendUrl: httpUrl(localHost(bind), port),
    registryUrl: settings.optStr('registry-url')?.replace(/\/+$/, '') || undefined,
    registryToken: settings.optStr('registry-token'),
    maxRestarts: settings.num('max-restarts'),
    restartDelayMs: ms('restart-delay'),
    maxRestartDelayMs: ms('max-restart-delay'),
    heartbeatIntervalMs: ms('heartbeat-interval'),
    startupTimeoutMs: ms('startup-timeout'),
    livenessIntervalMs: ms('liveness-interval'),
    livenessTimeoutMs: ms('liveness-timeout'),
    livenessFailures: settings.num('liveness-failures'),
    readinessIntervalMs: ms('readiness-interval'),
    readinessTimeoutMs: ms('readiness-timeout'),
    stopGraceMs: ms('stop-grace'),
    backend,
    metadata: settings.table('metadata'),
    configFile: settings.file,
  };
}
