import { advertisedHost, httpUrl } from '../common/address.js';
import { UsageError, numberOption, parseCommand, portOption, runCommand, type CommandSpec, type OptionValues } from '../common/command.js';
import { listen } from '../common/listen.js';
import { createLogger } from '../common/log.js';
import { RegistryClient } from '../registry/client.js';
import { RegistrationKeeper } from '../registry/registration-keeper.js';
import { onShutdownSignal } from '../common/shutdown.js';
import { PROFILES, type MockOptions } from './options.js';
import { MockServer } from './server.js';

export function mockSpec(name: string): CommandSpec {
  return {
    name,
    summary: 'OpenAI-compatible simulator of an LLM inference engine (timing, batching, prefix cache, faults).',
    options: {
      port: { type: 'string', default: '8000', metavar: 'PORT', help: 'listen port (0 picks a free one)' },
      host: { type: 'string', default: '127.0.0.1', metavar: 'ADDR', help: 'bind address' },
      'advertise-host': { type: 'string', metavar: 'HOST', help: 'host in the registered URL (default: bind host; 127.0.0.1 for 0.0.0.0)' },
      models: { type: 'string', default: 'mock-model', metavar: 'LIST', help: 'comma-separated model ids served' },
      name: { type: 'string', metavar: 'NAME', help: 'service name (default: mock-<port>)' },
      'registry-url': { type: 'string', metavar: 'URL', help: 'self-register with this registry and heartbeat' },
      'registry-token': { type: 'string', env: 'INFINI_REGISTRY_TOKEN', metavar: 'TOKEN', help: 'bearer token for the registry' },
      'heartbeat-interval': { type: 'string', default: '10', metavar: 'SECONDS', help: 'registry heartbeat period' },
      profile: { type: 'string', default: 'fast', metavar: 'NAME', help: `timing preset: ${Object.keys(PROFILES).join(', ')}` },
      'ttft-ms': { type: 'string', metavar: 'MS', help: 'base time to first token once scheduled' },
      'prefill-ms-per-token': { type: 'string', metavar: 'MS', help: 'prefill cost per prompt token not in the prefix cache' },
      'itl-ms': { type: 'string', metavar: 'MS', help: 'time between output tokens' },
      'output-tokens': { type: 'string', metavar: 'N', help: 'natural answer length in tokens (default 16)' },
      'max-concurrency': { type: 'string', metavar: 'N', help: 'requests decoding at once; the rest queue (default 256)' },
      'block-size': { type: 'string', default: '16', metavar: 'TOKENS', help: 'prefix-cache block size' },
      'cache-blocks': { type: 'string', default: '4096', metavar: 'N', help: 'prefix-cache capacity in blocks (0 disables)' },
      'embedding-dims': { type: 'string', default: '64', metavar: 'N', help: 'embedding vector size' },
      seed: { type: 'string', default: '0', metavar: 'N', help: 'seed of generated text and fault draws' },
      'error-rate': { type: 'string', default: '0', metavar: 'P', help: 'fraction of requests answered with --error-status' },
      'error-status': { type: 'string', default: '500', metavar: 'CODE', help: 'status of injected errors' },
      'hang-rate': { type: 'string', default: '0', metavar: 'P', help: 'fraction of requests that never get a first byte' },
      'drop-after': { type: 'string', metavar: 'K', help: 'drop every connection after K streamed chunks' },
      'crash-after': { type: 'string', metavar: 'N', help: 'crash the process (SIGKILL) on the Nth request' },
      'startup-delay': { type: 'string', default: '0', metavar: 'SECONDS', help: 'listen only after this delay (slow start)' },
    },
    epilog:
      'Per-request faults by header: x-mock-error: <status>, x-mock-hang: 1, x-mock-drop-after: <K>, x-mock-crash: 1,\n' +
      'x-mock-freeze: 1 (the whole engine hangs from then on, /health included).\n' +
      'Endpoints: /v1/chat/completions, /v1/completions, /v1/embeddings (also without /v1), /v1/models, /models, /health, /metrics.',
  };
}

function buildOptions(values: OptionValues, port: number): MockOptions {
  const profileName = String(values.profile);
  const profile = PROFILES[profileName];
  if (!profile) throw new UsageError(`--profile: unknown profile '${profileName}' (expected one of ${Object.keys(PROFILES).join(', ')})`);
  const opt = (key: string, fallback: number, o: { integer?: boolean; min?: number; max?: number } = {}) => (values[key] === undefined ? fallback : numberOption(values, key, o));
  const models = String(values.models).split(',').map((m) => m.trim()).filter(Boolean);
  if (models.length === 0) throw new UsageError('--models: expected at least one model id');
  const optionalInt = (key: string, min: number) => (values[key] === undefined ? undefined : numberOption(values, key, { integer: true, min }));
  return {
    name: (values.name as string | undefined) ?? `mock-${port}`,
    models,
    seed: numberOption(values, 'seed', { integer: true, min: 0, max: 2 ** 32 - 1 }),
    outputTokens: opt('output-tokens', profile.outputTokens ?? 16, { integer: true, min: 1, max: 1_000_000 }),
    embeddingDims: numberOption(values, 'embedding-dims', { integer: true, min: 1, max: 8192 }),
    timing: {
      ttftMs: opt('ttft-ms', profile.ttftMs ?? 0),
      prefillMsPerToken: opt('prefill-ms-per-token', profile.prefillMsPerToken ?? 0),
      itlMs: opt('itl-ms', profile.itlMs ?? 0),
    },
    maxConcurrency: opt('max-concurrency', profile.maxConcurrency ?? 256, { integer: true, min: 1 }),
    cache: {
      blockSize: numberOption(values, 'block-size', { integer: true, min: 1, max: 4096 }),
      capacityBlocks: numberOption(values, 'cache-blocks', { integer: true, min: 0 }),
    },
    faults: {
      errorRate: numberOption(values, 'error-rate', { min: 0, max: 1 }),
      errorStatus: numberOption(values, 'error-status', { integer: true, min: 400, max: 599 }),
      hangRate: numberOption(values, 'hang-rate', { min: 0, max: 1 }),
      dropAfterChunks: optionalInt('drop-after', 0),
      crashAfterRequests: optionalInt('crash-after', 1),
    },
  };
}

export function main(argv: string[], name = 'infini-svc mock'): Promise<void> {
  return runCommand(name, async () => {
    const { values } = parseCommand(mockSpec(name), argv);
    const port = portOption(values, 'port');
    const host = String(values.host);
    const opts = buildOptions(values, port);
    const startupDelayMs = numberOption(values, 'startup-delay', { min: 0, max: 86_400 }) * 1000;
    const heartbeatMs = numberOption(values, 'heartbeat-interval', { min: 0.05, max: 86_400 }) * 1000;
    const log = createLogger('mock', String(values['log-level']));
    const mock = new MockServer(opts, log);

    let keeper: RegistrationKeeper | undefined;
    let stopping = false;
    onShutdownSignal(log, async () => {
      stopping = true;
      // no new requests from routers (status), the ones in flight finish, then the record goes:
      // a deregistration while they run would make routers retry them elsewhere
      if (keeper?.has(opts.name)) await keeper.setStatus(opts.name, 'stopping');
      await mock.close();
      await keeper?.stop();
    });

    if (startupDelayMs > 0) {
      log.info({ delay_s: startupDelayMs / 1000 }, 'slow start: waiting before listening');
      await new Promise((r) => setTimeout(r, startupDelayMs));
      if (stopping) return;
    }
    mock.port = await listen(mock.server, port, host, name);
    if (opts.name === 'mock-0') opts.name = `mock-${mock.port}`;
    log.info({ port: mock.port, host, name: opts.name, models: opts.models }, 'mock listening');

    const registryUrl = values['registry-url'] as string | undefined;
    if (registryUrl) {
      const advertise = advertisedHost(host, values['advertise-host'] as string | undefined);
      keeper = new RegistrationKeeper(new RegistryClient(registryUrl, values['registry-token'] as string | undefined), heartbeatMs, log);
      await keeper.set({
        name: opts.name,
        host: advertise,
        hostname: advertise,
        port: mock.port,
        url: httpUrl(advertise, mock.port),
        status: 'running',
        metadata: { type: 'openai-api', models: opts.models, models_list: mock.modelObjects(), backend: 'infini-mock' },
      });
    }
  });
}
