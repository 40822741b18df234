import type { ServiceSpec } from '../common/settings.js';
import { registryCaSetting } from '../common/tls-files.js';
import { PROFILES } from './options.js';

/** Every setting of the mock engine. Engine settings left unset come from --profile. */
export function mockSpec(name = 'infini-svc mock'): ServiceSpec {
  const fromProfile = 'from --profile';
  return {
    name,
    service: 'mock',
    summary: 'OpenAI-compatible simulator of an LLM inference engine (timing, batching, prefix cache, faults).',
    settings: [
      { key: 'port', type: 'port', default: 8000, metavar: 'PORT', help: 'listen port (0 picks a free one)' },
      { key: 'host', type: 'string', default: '127.0.0.1', metavar: 'ADDR', help: 'bind address; also the host others are told, unless --advertise-host' },
      { key: 'advertise-host', type: 'string', defaultText: '--host; the machine\'s name for 0.0.0.0', metavar: 'HOST', help: 'host in the registered URL' },
      { key: 'models', type: 'list', default: 'mock-model', metavar: 'LIST', help: 'comma-separated model ids served' },
      { key: 'name', type: 'string', defaultText: 'mock-<port>', metavar: 'NAME', help: 'service name' },
      { key: 'registry-url', type: 'string', metavar: 'URL', help: 'self-register with this registry and heartbeat' },
      { key: 'registry-token', type: 'string', env: 'INFINI_REGISTRY_TOKEN', secret: true, metavar: 'TOKEN', help: 'bearer token for the registry' },
      registryCaSetting,
      { key: 'heartbeat-interval', type: 'number', default: 10, min: 0.05, max: 86_400, metavar: 'SECONDS', help: 'registry heartbeat period' },
      { key: 'profile', type: 'string', default: 'fast', choices: Object.keys(PROFILES), metavar: 'NAME', help: `engine preset: ${Object.keys(PROFILES).join(', ')} (realistic = h100-8b)` },
      { key: 'ttft-ms', type: 'number', min: 0, defaultText: '0', metavar: 'MS', help: 'fixed extra time of an engine step that prefills (a lone request: TTFT = this + prefill)' },
      { key: 'prefill-ms-per-token', type: 'number', min: 0, defaultText: fromProfile, metavar: 'MS', help: 'step time per prompt token computed (not found in the prefix cache)' },
      { key: 'itl-ms', type: 'number', min: 0, defaultText: '0', metavar: 'MS', help: 'fixed extra time of an engine step that decodes (a lone request: the time between tokens)' },
      { key: 'output-tokens', type: 'integer', min: 1, max: 1_000_000, defaultText: `${fromProfile} (fast: 16)`, metavar: 'N', help: 'natural answer length in tokens' },
      { key: 'max-concurrency', type: 'integer', min: 1, defaultText: `${fromProfile} (256)`, metavar: 'N', help: 'requests running at once (vLLM max_num_seqs); the rest wait' },
      { key: 'max-batched-tokens', type: 'integer', min: 1, defaultText: `${fromProfile} (8192)`, metavar: 'N', help: 'token budget of an engine step (decodes, then chunked prefill)' },
      { key: 'kv-blocks', type: 'integer', min: 1, defaultText: `${fromProfile} (fast: 65536)`, metavar: 'N', help: 'KV cache size in blocks; a request that can never fit is refused (400)' },
      { key: 'block-size', type: 'integer', min: 1, max: 4096, defaultText: `${fromProfile} (16)`, metavar: 'TOKENS', help: 'tokens per KV block (and prefix-cache block)' },
      { key: 'cache-blocks', type: 'integer', min: 0, defaultText: `${fromProfile} (fast: 4096)`, metavar: 'N', help: 'most free KV blocks kept as prefix cache (0 disables)' },
      { key: 'embedding-dims', type: 'integer', default: 64, min: 1, max: 8192, metavar: 'N', help: 'embedding vector size' },
      { key: 'seed', type: 'integer', default: 0, min: 0, max: 2 ** 32 - 1, metavar: 'N', help: 'seed of generated text and fault draws' },
      { key: 'error-rate', type: 'number', default: 0, min: 0, max: 1, metavar: 'P', help: 'fraction of requests answered with --error-status' },
      { key: 'error-status', type: 'integer', default: 500, min: 400, max: 599, metavar: 'CODE', help: 'status of injected errors' },
      { key: 'hang-rate', type: 'number', default: 0, min: 0, max: 1, metavar: 'P', help: 'fraction of requests that never get a first byte' },
      { key: 'drop-after', type: 'integer', min: 0, metavar: 'K', help: 'drop every connection after K streamed chunks' },
      { key: 'crash-after', type: 'integer', min: 1, metavar: 'N', help: 'crash the process (SIGKILL) on the Nth request' },
      { key: 'startup-delay', type: 'number', default: 0, min: 0, max: 86_400, metavar: 'SECONDS', help: 'listen only after this delay (slow start)' },
    ],
    epilog:
      'Per-request faults by header: x-mock-error: <status>, x-mock-hang: 1, x-mock-drop-after: <K>, x-mock-crash: 1,\n' +
      'x-mock-freeze: 1 (the whole engine hangs from then on, /health included).\n' +
      'Endpoints: /v1/chat/completions, /v1/completions, /v1/embeddings (also without /v1), /v1/models, /models, /health, /metrics.',
  };
}
