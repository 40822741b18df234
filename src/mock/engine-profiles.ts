/**
 * What shapes one simulated engine: its step time and its capacities.
 *
 * Step time (ms) = stepMs + prefillMsPerToken * (prompt tokens computed in the step)
 *                         + decodeMsPerSeq * (sequences decoding in the step),
 * charged only for a step that does something. The fixed part is reading the weights once per
 * forward pass (decode is memory-bound), the prefill part is compute (about 2 x parameters FLOPs
 * a token), the per-sequence part is the growth of a decode step with the batch (KV reads,
 * sampling). Ignored: attention's growth with context length, CUDA-graph batch buckets, and
 * speculative decoding; the figures below are fitted to public measurements that include them.
 */
export interface EngineProfile {
  /** Fixed cost of a step (ms). */
  stepMs: number;
  /** Cost of each prompt token computed in a step (ms): 1 / prefill throughput. */
  prefillMsPerToken: number;
  /** Cost of each sequence decoding in a step (ms). */
  decodeMsPerSeq: number;
  /** Token budget of a step (vLLM's max_num_batched_tokens). */
  maxBatchedTokens: number;
  /** Most requests running at once (vLLM's max_num_seqs). */
  maxRunning: number;
  /** KV cache size in blocks. */
  kvBlocks: number;
  /** Tokens a block holds (vLLM's default: 16). */
  blockSize: number;
  /** Most free blocks the prefix cache may keep (0: prefix caching off). */
  cacheBlocks: number;
  /**
   * Fixed extra cost of a step that prefills / decodes anything (ms); 0 when absent. The named
   * profiles leave them out: they carry the mock's older flags --ttft-ms and --itl-ms, so that a
   * lone request still sees TTFT = ttft + prefill and ITL = itl, as before the step model.
   */
  prefillStepMs?: number;
  decodeStepMs?: number;
}

/**
 * Named profiles. Sources and arithmetic:
 *
 * `h100-8b`: Llama-3.1-8B in BF16 on one H100 SXM 80 GB, vLLM defaults.
 * - Decode: the 16 GB of weights read once a step at 3.35 TB/s take 4.8 ms, so a step costs
 *   ~5 ms at batch 1. NVIDIA's NIM benchmark page (docs.nvidia.com/nim/benchmarking/llm/1.0.0/
 *   performance, Llama-3.1-8B-Instruct table, NIM 1.8.0; GPUs and lengths as stated there)
 *   measures an inter-token latency of 4.6 ms at 1 concurrent request, 7.6 ms at 100 and 16.1 ms
 *   at 250: about +0.04 ms a sequence. The model gives 5.0, 9.0 and 15.0 ms.
 * - Prefill: ~16 GFLOP a token against 989 dense BF16 TFLOP/s at ~45% utilisation: ~28k tokens/s,
 *   0.035 ms a token (vLLM's own H100 benchmarks show prefill of this order).
 * - KV: 128 KiB a token (32 layers x 8 KV heads x 128 dims x 2 (K,V) x 2 bytes); 90% of 80 GB less
 *   16 GB of weights and ~4 GB of activations leaves ~52 GB: ~400k tokens = 25,000 blocks of 16.
 * - 8192 batched tokens and 256 sequences: vLLM's defaults for an online server of that size.
 *
 * `h100x8-70b`: Llama-3.1-70B in BF16, tensor-parallel over 8 H100 SXM 80 GB.
 * - Decode: 17.5 GB of weights per GPU read in 5.2 ms, plus two all-reduces per layer over 80
 *   layers: the same page's Llama-3.1-70B-Instruct table (NIM 1.3.0) measures 13.2 ms at 1
 *   concurrent request, 23.3 ms at 100 and 31.2 ms at 200; the model gives 12.1, 22 and 32 ms.
 * - Prefill: ~140 GFLOP a token over 8 x 989 TFLOP/s at ~35% (tensor-parallel communication):
 *   ~20k tokens/s, 0.05 ms a token.
 * - KV: 320 KiB a token (80 layers x 8 KV heads x 128 x 2 x 2 bytes); 90% of 640 GB less 140 GB of
 *   weights and ~30 GB of activations leaves ~400 GB: ~1.3M tokens = 80,000 blocks of 16.
 *
 * `fast`: no time at all (the default for tests and the router's benchmarks), generous capacity.
 */
export const ENGINE_PROFILES = {
  fast: { stepMs: 0, prefillMsPerToken: 0, decodeMsPerSeq: 0, maxBatchedTokens: 8192, maxRunning: 256, kvBlocks: 65_536, blockSize: 16, cacheBlocks: 4096 },
  'h100-8b': { stepMs: 5, prefillMsPerToken: 0.035, decodeMsPerSeq: 0.04, maxBatchedTokens: 8192, maxRunning: 256, kvBlocks: 25_000, blockSize: 16, cacheBlocks: 25_000 },
  'h100x8-70b': { stepMs: 12, prefillMsPerToken: 0.05, decodeMsPerSeq: 0.1, maxBatchedTokens: 8192, maxRunning: 256, kvBlocks: 80_000, blockSize: 16, cacheBlocks: 80_000 },
} satisfies Record<string, EngineProfile>;

export type EngineProfileName = keyof typeof ENGINE_PROFILES;

/** Duration (ms) of a step that computes `prefillTokens` prompt tokens and decodes `decodeSeqs` sequences. */
export function stepDurationMs(p: EngineProfile, prefillTokens: number, decodeSeqs: number): number {
  if (prefillTokens === 0 && decodeSeqs === 0) return 0;
  const fixed = p.stepMs + (prefillTokens > 0 ? (p.prefillStepMs ?? 0) : 0) + (decodeSeqs > 0 ? (p.decodeStepMs ?? 0) : 0);
  return fixed + p.prefillMsPerToken * prefillTokens + p.decodeMsPerSeq * decodeSeqs;
}
