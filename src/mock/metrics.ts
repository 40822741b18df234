import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

/** Where the gauges read their values at scrape time. */
export interface EngineState {
  running(): number;
  waiting(): number;
  cacheUsage(): number;
  prefixQueries(): number;
  prefixHits(): number;
}

/** Per-model metric children, resolved once so the request path never hashes label sets. */
export interface ModelMetrics {
  promptTokens: Counter.Internal;
  generationTokens: Counter.Internal;
  successStop: Counter.Internal;
  successLength: Counter.Internal;
  ttft: Histogram.Internal<string>;
  e2e: Histogram.Internal<string>;
}

/**
 * vLLM-style Prometheus metrics (same names as vLLM's `vllm:` family where one exists), plus the
 * mock's own `mock:` counters for cancellations and injected faults.
 */
export class MockMetrics {
  readonly registry = new Registry();
  readonly cancelled: Counter;
  readonly faults: Counter<'kind'>;
  private readonly perModel = new Map<string, ModelMetrics>();

  constructor(models: string[], state: EngineState) {
    const registers = [this.registry];
    new Gauge({ name: 'vllm:num_requests_running', help: 'Requests decoding now', registers, collect() { this.set(state.running()); } });
    new Gauge({ name: 'vllm:num_requests_waiting', help: 'Requests waiting for a batch slot', registers, collect() { this.set(state.waiting()); } });
    new Gauge({ name: 'vllm:gpu_cache_usage_perc', help: 'KV-cache usage, 0 to 1 (older vLLM name)', registers, collect() { this.set(state.cacheUsage()); } });
    new Gauge({ name: 'vllm:kv_cache_usage_perc', help: 'KV-cache usage, 0 to 1', registers, collect() { this.set(state.cacheUsage()); } });
    // Cumulative values kept by the prefix cache; exposed as counters via collect.
    new Counter({ name: 'vllm:prefix_cache_queries_total', help: 'Prompt tokens looked up in the prefix cache', registers, collect() { this.reset(); this.inc(state.prefixQueries()); } });
    new Counter({ name: 'vllm:prefix_cache_hits_total', help: 'Prompt tokens found in the prefix cache', registers, collect() { this.reset(); this.inc(state.prefixHits()); } });
    const labelNames = ['model_name'] as const;
    const prompt = new Counter({ name: 'vllm:prompt_tokens_total', help: 'Prefill tokens processed', labelNames, registers });
    const generation = new Counter({ name: 'vllm:generation_tokens_total', help: 'Generation tokens produced', labelNames, registers });
    const success = new Counter({ name: 'vllm:request_success_total', help: 'Finished requests', labelNames: ['model_name', 'finished_reason'] as const, registers });
    const ttft = new Histogram({ name: 'vllm:time_to_first_token_seconds', help: 'Time to first token, queueing included', labelNames, buckets: LATENCY_BUCKETS, registers });
    const e2e = new Histogram({ name: 'vllm:e2e_request_latency_seconds', help: 'End-to-end request latency', labelNames, buckets: LATENCY_BUCKETS, registers });
    this.cancelled = new Counter({ name: 'mock:requests_cancelled_total', help: 'Requests whose client disconnected before the end', registers });
    this.faults = new Counter({ name: 'mock:injected_faults_total', help: 'Injected faults by kind', labelNames: ['kind'] as const, registers });
    for (const model_name of models) {
      this.perModel.set(model_name, {
        promptTokens: prompt.labels({ model_name }),
        generationTokens: generation.labels({ model_name }),
        successStop: success.labels({ model_name, finished_reason: 'stop' }),
        successLength: success.labels({ model_name, finished_reason: 'length' }),
        ttft: ttft.labels({ model_name }),
        e2e: e2e.labels({ model_name }),
      });
    }
  }

  model(name: string): ModelMetrics {
    return this.perModel.get(name)!;
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
