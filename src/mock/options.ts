import { ENGINE_PROFILES, type EngineProfile } from './engine-profiles.js';

/** Everything that shapes the simulated engine; filled from flags (and a profile) by the CLI. */
export interface MockOptions {
  name: string;
  models: string[];
  seed: number;
  /** Natural answer length in tokens (max_tokens may cut it). */
  outputTokens: number;
  embeddingDims: number;
  /** The continuous-batching engine model's timing and capacities (engine-profiles.ts). */
  engine: EngineProfile;
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

export interface MockProfile {
  engine: EngineProfile;
  outputTokens: number;
}

/**
 * --profile presets; explicit flags override them. `fast` (zero time) suits tests and the router's
 * benchmarks; `realistic` is the older name of `h100-8b`.
 */
export const PROFILES: Record<string, MockProfile> = {
  fast: { engine: ENGINE_PROFILES.fast, outputTokens: 16 },
  'h100-8b': { engine: ENGINE_PROFILES['h100-8b'], outputTokens: 64 },
  'h100x8-70b': { engine: ENGINE_PROFILES['h100x8-70b'], outputTokens: 64 },
  realistic: { engine: ENGINE_PROFILES['h100-8b'], outputTokens: 64 },
};
