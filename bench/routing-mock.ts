/**
 * A mock engine for `npm run bench:routing`: the mock's own server (src/mock/server.ts) with the
 * `realistic` profile (h100-8b) slowed down `--time-scale` times (every step cost multiplied,
 * capacities kept), which the mock's flags cannot say. A slower engine keeps this machine's CPU
 * far from being the limit: the engines' contention is what is measured, not Node's.
 *
 *   node dist/bench/routing-mock.js --port P --time-scale S [--kv-blocks N] [--output-tokens N] [--name NAME] [--seed N]
 */
import { parseArgs } from 'node:util';
import { listen } from '../src/common/listen.js';
import { createLogger } from '../src/common/log.js';
import { onShutdownSignal } from '../src/common/shutdown.js';
import { PROFILES, type MockOptions } from '../src/mock/options.js';
import { MockServer } from '../src/mock/server.js';
import { scaleProfile } from './routing-model.js';

const { values: a } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'time-scale': { type: 'string', default: '1' },
    'kv-blocks': { type: 'string' },
    'output-tokens': { type: 'string', default: '64' },
    name: { type: 'string', default: 'engine' },
    seed: { type: 'string', default: '0' },
    models: { type: 'string', default: 'm' },
  },
});

const profile = PROFILES.realistic!;
const kvBlocks = a['kv-blocks'] !== undefined ? Number(a['kv-blocks']) : profile.engine.kvBlocks;
const opts: MockOptions = {
  name: a.name!,
  models: a.models!.split(','),
  seed: Number(a.seed),
  outputTokens: Number(a['output-tokens']),
  embeddingDims: 64,
  // the prefix cache is the KV cache's free blocks, as in vLLM: it may use all of them
  engine: { ...scaleProfile(profile.engine, Number(a['time-scale'])), kvBlocks, cacheBlocks: kvBlocks },
  faults: { errorRate: 0, errorStatus: 500, hangRate: 0 },
};
const log = createLogger('mock', 'warn');
const mock = new MockServer(opts, log);
onShutdownSignal(log, () => mock.close());
mock.port = await listen(mock.server, Number(a.port), '127.0.0.1', 'routing mock');
