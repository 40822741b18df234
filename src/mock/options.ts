/** Everything that shapes the simulated engine; filled from flags (and a profile) by the CLI. */
export interface MockOptions {
  name: string;
  models: string[];
  seed: number;
  /** Natural answer length in tokens (max_tokens may cut it). */
  outputTokens: number;
  embeddingDims: number;
  timing: {
    /** Base time to first token once a batch slot is free. */
    ttftMs: number;
    /** Prefill cost per prompt token not found in the prefix cache. */
    prefillMsPerToken: number;
    /** Time between output tokens. */
    itlMs: number;
  };
  maxConcurrency: number;
  cache: { blockSize: number; capacityBlocks: number };
  faults: {
    errorRate: number;
    errorStatus: number;
    hangRate: number;
    /** Drop the connection after this many streamed chunks (undefined: never). */
    dropAfterChunks?: number;
    /** Crash the process on the Nth request (undefined: never). */
    crashAfterRequests?: number;
  };
}

/** Timing presets; explicit flags override them. `fast` (zero latency) suits tests and benchmarks. */
export const PROFILES: Record<string, Partial<MockOptions['timing']> & { maxConcurrency?: number; outputTokens?: number }> = {
  fast: { ttftMs: 0, prefillMsPerToken: 0, itlMs: 0 },
  // Roughly an 8B model on one modern GPU: ~12k prefill tokens/s, ~80 output tokens/s per sequence.
  realistic: { ttftMs: 25, prefillMsPerToken: 0.08, itlMs: 12, maxConcurrency: 64, outputTokens: 64 },
};
