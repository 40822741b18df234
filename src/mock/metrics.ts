import { Counter, Gauge, Registry, type Metric } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

/** Where the gauges read their values at scrape time. */
export interface EngineState {
  running(): number;
  waiting(): number;
  cacheUsage(): number;
  prefixQueries(): number;
  prefixHits(): number;
  preemptions(): number;
  /** Free KV blocks whose content the prefix cache keeps. */
  cachedBlocks(): number;
}

/** A latency histogram kept in plain numbers: observing costs a bucket search, nothing more. */
export class LatencyHistogram {
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

/**
 * Per-model counters, plain fields read at scrape time: prom-client's labelled children hash
 * their labels on every call (~0.4 us per histogram observation), a real share of a fast mock's
 * per-request cost.
 */
export class ModelMetrics {
  promptTokens = 0;
  generationTokens = 0;
  successStop = 0;
  successLength = 0;
  /** Requests seen; a model's series appear once it has any. */
  requests = 0;
  readonly ttft = new LatencyHistogram();
  readonly itl = new LatencyHistogram();
  readonly e2e = new LatencyHistogram();
}

/** A histogram metric for prom-client's registry, read from the models' LatencyHistograms. */
function histogramMetric(name: string, help: string, perModel: Map<string, ModelMetrics>, pick: (m: ModelMetrics) => LatencyHistogram) {
  const get = async () => {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const [model_name, m] of perModel) {
      const h = pick(m);
      if (h.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i <= LATENCY_BUCKETS.length; i++) {
        cumulative += h.counts[i]!;
        values.push({ metricName: `${name}_bucket`, labels: { le: i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i]! : '+Inf', model_name }, value: cumulative });
      }
      values.push({ metricName: `${name}_sum`, labels: { model_name }, value: h.sum });
      values.push({ metricName: `${name}_count`, labels: { model_name }, value: h.count });
    }
    return { name, help, type: 'histogram' as const, aggregator: 'sum' as const, values };
  };
  return { name, help, type: 'histogram', aggregator: 'sum', get, reset: () => undefined };
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
    new Gauge({ name: 'vllm:num_requests_running', help: 'Requests in the engine\'s batch (prefilling or decoding)', registers, collect() { this.set(state.running()); } });
    new Gauge({ name: 'vllm:num_requests_waiting', help: 'Requests waiting to be admitted (preempted ones included)', registers, collect() { this.set(state.waiting()); } });
    new Gauge({ name: 'vllm:gpu_cache_usage_perc', help: 'KV blocks held by requests, 0 to 1 (older vLLM name)', registers, collect() { this.set(state.cacheUsage()); } });
    new Gauge({ name: 'vllm:kv_cache_usage_perc', help: 'KV blocks held by requests, 0 to 1', registers, collect() { this.set(state.cacheUsage()); } });
    // Cumulative values kept by the prefix cache; exposed as counters via collect.
    new Counter({ name: 'vllm:prefix_cache_queries_total', help: 'Prompt tokens looked up in the prefix cache', registers, collect() { this.reset(); this.inc(state.prefixQueries()); } });
    new Counter({ name: 'vllm:prefix_cache_hits_total', help: 'Prompt tokens found in the prefix cache', registers, collect() { this.reset(); this.inc(state.prefixHits()); } });
    new Counter({ name: 'vllm:num_preemptions_total', help: 'Requests preempted (KV cache full), to be recomputed', registers, collect() { this.reset(); this.inc(state.preemptions()); } });
    new Gauge({ name: 'mock:prefix_cache_blocks', help: 'Free KV blocks kept as prefix cache', registers, collect() { this.set(state.cachedBlocks()); } });
    const perModel = this.perModel;
    for (const model_name of models) perModel.set(model_name, new ModelMetrics());
    const each = (counter: Counter<string>, field: (m: ModelMetrics) => number) => {
      counter.reset();
      for (const [model_name, m] of perModel) if (m.requests > 0) counter.inc({ model_name }, field(m));
    };
    const labelNames = ['model_name'] as const;
    new Counter({ name: 'vllm:prompt_tokens_total', help: 'Prefill tokens processed', labelNames, registers, collect() { each(this, (m) => m.promptTokens); } });
    new Counter({ name: 'vllm:generation_tokens_total', help: 'Generation tokens produced', labelNames, registers, collect() { each(this, (m) => m.generationTokens); } });
    new Counter({
      name: 'vllm:request_success_total',
      help: 'Finished requests',
      labelNames: ['model_name', 'finished_reason'] as const,
      registers,
      collect() {
        this.reset();
        for (const [model_name, m] of perModel) {
          if (m.successLength > 0) this.inc({ model_name, finished_reason: 'length' }, m.successLength);
          if (m.successStop > 0) this.inc({ model_name, finished_reason: 'stop' }, m.successStop);
        }
      },
    });
    // duck-typed metrics: the registry reads `name` and `type` and calls `get()`
    this.registry.registerMetric(histogramMetric('vllm:time_to_first_token_seconds', 'Time to first token, queueing included', perModel, (m) => m.ttft) as unknown as Metric);
    this.registry.registerMetric(histogramMetric('vllm:inter_token_latency_seconds', 'Time between consecutive tokens of a request', perModel, (m) => m.itl) as unknown as Metric);
    this.registry.registerMetric(histogramMetric('vllm:e2e_request_latency_seconds', 'End-to-end request latency', perModel, (m) => m.e2e) as unknown as Metric);
    this.cancelled = new Counter({ name: 'mock:requests_cancelled_total', help: 'Requests whose client disconnected before the end', registers });
    this.faults = new Counter({ name: 'mock:injected_faults_total', help: 'Injected faults by kind', labelNames: ['kind'] as const, registers });
  }

  model(name: string): ModelMetrics {
    return this.perModel.get(name)!;
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
