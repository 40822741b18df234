import { advertisedHost, httpUrl } from '../common/address.js';
import { UsageError, runCommand } from '../common/command.js';
import { listen } from '../common/listen.js';
import { createLogger } from '../common/log.js';
import { resolveSettings, type Settings } from '../common/settings.js';
import { trustCaFile } from '../common/client-tls.js';
import { RegistryClient } from '../registry/client.js';
import { RegistrationKeeper } from '../registry/registration-keeper.js';
import { onShutdownSignal } from '../common/shutdown.js';
import { PROFILES, type MockOptions } from './options.js';
import { MockServer } from './server.js';
import { mockSpec } from './spec.js';

export { mockSpec };

function buildOptions(settings: Settings, port: number): MockOptions {
  const profile = PROFILES[settings.str('profile')]!;
  const p = profile.engine;
  const or = (key: string, fallback: number) => settings.optNum(key) ?? fallback;
  return {
    name: settings.optStr('name') ?? `mock-${port}`,
    models: settings.list('models')!,
    seed: settings.num('seed'),
    outputTokens: or('output-tokens', profile.outputTokens),
    embeddingDims: settings.num('embedding-dims'),
    engine: {
      stepMs: p.stepMs,
      prefillStepMs: or('ttft-ms', p.prefillStepMs ?? 0),
      decodeStepMs: or('itl-ms', p.decodeStepMs ?? 0),
      prefillMsPerToken: or('prefill-ms-per-token', p.prefillMsPerToken),
      decodeMsPerSeq: p.decodeMsPerSeq,
      maxBatchedTokens: or('max-batched-tokens', p.maxBatchedTokens),
      maxRunning: or('max-concurrency', p.maxRunning),
      kvBlocks: or('kv-blocks', p.kvBlocks),
      blockSize: or('block-size', p.blockSize),
      cacheBlocks: or('cache-blocks', p.cacheBlocks),
    },
    faults: {
      errorRate: settings.num('error-rate'),
      errorStatus: settings.num('error-status'),
      hangRate: settings.num('hang-rate'),
      dropAfterChunks: settings.optNum('drop-after'),
      crashAfterRequests: settings.optNum('crash-after'),
    },
  };
}

export function main(argv: string[], name = 'infini-svc mock'): Promise<void> {
  return runCommand(name, async () => {
    const settings = resolveSettings(mockSpec(name), argv);
    const port = settings.num('port');
    const host = settings.str('host');
    const opts = buildOptions(settings, port);
    if (opts.models.length === 0) throw new UsageError('--models: expected at least one model id');
    const startupDelayMs = settings.num('startup-delay') * 1000;
    const heartbeatMs = settings.num('heartbeat-interval') * 1000;
    const log = createLogger('mock', settings.str('log-level'));
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

    const registryUrl = settings.optStr('registry-url');
    if (registryUrl) {
      trustCaFile(settings.optStr('registry-ca'));
      const advertise = advertisedHost(host, settings.optStr('advertise-host'));
      keeper = new RegistrationKeeper(new RegistryClient(registryUrl, settings.optStr('registry-token')), heartbeatMs, log);
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
