import type { Setting, ServiceSpec } from '../common/settings.js';
import { registryCaSetting } from '../common/tls-files.js';
import { BACKEND_TYPES } from './backend-types.js';

const seconds = (key: string, def: number, help: string, min = 0.01): Setting => ({
  key,
  type: 'number',
  default: def,
  min,
  max: 86_400 * 365,
  metavar: 'SECONDS',
  help,
  fileKeys: [`babysitter.${key.replace(/-/g, '_')}`],
});

const backend = (key: string, fileKey: string, rest: Omit<Setting, 'key' | 'fileKeys'>): Setting => ({ key, fileKeys: [`backend.${fileKey}`], ...rest });

/**
 * Every setting of the babysitter. Its own file keeps the original's nested schema: `name`,
 * `host`, `port`, `registry_url` at the top, `[babysitter]` timings, `[backend]` the server to
 * run, `[metadata]` merged into the registration; flag names work as keys too.
 */
export function babysitterSpec(name = 'infini-svc babysitter'): ServiceSpec {
  return {
    name,
    service: 'babysitter',
    configFlag: 'config-file',
    summary: 'Supervises one inference server: starts, probes, restarts it, and keeps it registered.',
    settings: [
      { key: 'name', type: 'string', defaultText: '<type>-<port>', metavar: 'NAME', help: 'service name' },
      { key: 'host', type: 'string', default: 'localhost', metavar: 'HOST', help: 'address to bind (the babysitter at port+1 and preset backends) and to advertise, unless --advertise-host' },
      { key: 'advertise-host', type: 'string', defaultText: "--host; the machine's name for 0.0.0.0", metavar: 'HOST', help: 'host the registry is told' },
      { key: 'bind', type: 'string', defaultText: '--host', metavar: 'ADDR', help: 'bind address, making --host advertised only (kept from earlier versions; prefer --host and --advertise-host)' },
      { key: 'port', type: 'integer', min: 1, max: 65_534, metavar: 'PORT', help: 'backend port; the babysitter listens on port+1 (required)' },
      backend('service-type', 'type', { type: 'string', default: 'command', metavar: 'TYPE', help: `backend type (any case): ${Object.keys(BACKEND_TYPES).join(', ')}` }),
      backend('command', 'command', { type: 'string', metavar: 'CMD', help: 'program and leading arguments (forces type command)' }),
      backend('args', 'args', { type: 'words', dashValue: true, metavar: 'ARGS', help: 'extra arguments, split like a shell (for mock: the comma-separated models)' }),
      { key: 'path', type: 'string', fileKeys: ['backend.model', 'backend.model_path', 'backend.config_file'], metavar: 'PATH', help: 'model path (vllm, sglang, llama.cpp, infinilm) or config file (infinilm-rust)' },
      backend('models', 'models', { type: 'list', metavar: 'LIST', help: 'comma-separated model ids the backend serves (for backends without a models endpoint)' }),
      backend('launch-script', 'launch_script', { type: 'string', defaultText: 'launch_server.py in --work-dir', metavar: 'FILE', help: 'InfiniLM launch script' }),
      backend('work-dir', 'work_dir', { type: 'string', metavar: 'DIR', help: 'working directory of the backend' }),
      backend('env', 'env', { type: 'map', multiple: true, dashValue: true, metavar: 'K=V', help: 'environment for the backend ("K=V K2=V2" also accepted; values are never logged)' }),
      { key: 'registry-url', type: 'string', metavar: 'URL', help: 'register with this registry and heartbeat' },
      { key: 'registry-token', type: 'string', env: 'INFINI_REGISTRY_TOKEN', secret: true, metavar: 'TOKEN', help: 'bearer token for the registry; when set, /info shows the command, metadata and recent output only to callers sending it' },
      registryCaSetting,
      { key: 'router-url', type: 'string', unused: true, metavar: 'URL', help: 'accepted for compatibility, unused' },
      { key: 'max-restarts', type: 'integer', default: 10_000, min: 0, metavar: 'N', help: 'restarts before the backend is reported failed', fileKeys: ['babysitter.max_restarts'] },
      seconds('restart-delay', 5, 'first restart delay, doubling per consecutive failure', 0),
      seconds('max-restart-delay', 300, 'longest restart delay', 0),
      seconds('heartbeat-interval', 30, 'registry heartbeat period'),
      seconds('startup-timeout', 1200, 'a start not ready by then counts as failed'),
      seconds('liveness-interval', 30, 'probe period while ready'),
      seconds('liveness-timeout', 10, 'timeout of one liveness probe'),
      { key: 'liveness-failures', type: 'integer', default: 3, min: 1, max: 1000, metavar: 'N', help: 'consecutive failed probes that mean hung', fileKeys: ['babysitter.liveness_failures'] },
      seconds('readiness-interval', 5, 'while ready, /health probe period; one failure = not routable until one passes'),
      seconds('readiness-timeout', 5, 'timeout of one readiness probe'),
      seconds('stop-grace', 30, 'SIGTERM to SIGKILL grace when stopping the backend', 0),
      { key: 'metadata', type: 'table', fileOnly: true, fileKeys: ['metadata'], help: 'merged into the backend\'s registry record ([metadata] table)' },
      { key: 'dev', type: 'string', unused: true, help: 'accepted for compatibility, unused' },
      { key: 'ndev', type: 'string', unused: true, help: 'accepted for compatibility, unused' },
      { key: 'max-batch', type: 'string', unused: true, help: 'accepted for compatibility, unused' },
    ],
    epilog: 'Endpoints on port+1: GET /health (200 only while the backend is ready, else 503), /models, /info (details need the token when one is set), /metrics (Prometheus).',
  };
}
