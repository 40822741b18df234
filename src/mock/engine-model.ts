/**
 * A continuous-batching engine, modelled on vLLM's scheduler with chunked prefill, with no I/O:
 * time comes from an injected clock, so the same code runs in virtual time (a loop calls step()
 * at nextEventTime(), see engine-driver.ts) and in real time (a driver arms timers).
 *
 * A step, planned when the previous one ends:
 * 1. every running request that is decoding gets one token of the step's budget
 *    (`maxBatchedTokens`), oldest first; one that needs a new KV block and finds none preempts
 *    the newest running request (possibly itself) until one is free;
 * 2. the rest of the budget goes to prefill, FIFO: first the running requests whose prompt is
 *    partly computed, then (unless the step preempted someone, as vLLM does) waiting requests
 *    are admitted in arrival order while the budget, `maxRunning` and the KV cache allow. A
 *    waiting request at the head that does not fit waits, and so does everyone behind it.
 * 3. the step lasts stepDurationMs(profile, prefill tokens, decoding sequences); when it ends,
 *    a request whose tokens are all computed samples its next token (its first when the prompt
 *    is done), and one with `maxTokens` tokens finishes and frees its blocks.
 * Decodes before prefill is vLLM V0's chunked-prefill order (and Sarathi's); V1 walks running
 * requests in order, which differs only while a long prompt is still being split.
 *
 * KV cache (kv-blocks.ts): admission reserves blocks for the whole prompt (as vLLM V0 did; V1
 * allocates per chunk), less the leading blocks found in the prefix cache; decoding takes one
 * more block every `blockSize` tokens. Prefix-cache hits are whole blocks and stop one token
 * short of the prompt's end (vLLM always computes the last token, to sample from it).
 *
 * Preemption: recompute, vLLM V1's only mode (and V0's default): the victim frees all its blocks
 * (the full ones stay in the prefix cache, so its recompute may find them), goes back to the
 * head of the waiting queue with its generated tokens kept, and on readmission prefills prompt
 * plus generated tokens again, then goes on sampling. No token is emitted twice.
 */
import { KvBlockPool, type BlockList } from './kv-blocks.js';
import { stepDurationMs, type EngineProfile } from './engine-profiles.js';

/** A source of time in milliseconds. */
export interface Clock {
  now(): number;
}

export const realClock: Clock = { now: () => performance.now() };

export interface RequestSpec {
  /** For the caller's logs and handlers; defaults to a sequence number. */
  id?: string;
  /** Prompt length in tokens (at least 1). */
  promptTokens: number;
  /**
   * Chained hashes of the sequence's full blocks (chainedBlockHashes): the prompt's, optionally
   * followed by those of the output the request will generate, so that a later prompt which
   * repeats this answer (a chat's next turn) can hit them. Without: no prefix caching.
   */
  blockHashes?: readonly number[];
  /** Tokens to generate (at least 1); the request finishes with exactly this many. */
  maxTokens: number;
}

export interface RequestSummary {
  id: string;
  promptTokens: number;
  /** Prompt tokens found in the prefix cache at first admission. */
  cachedTokens: number;
  outputTokens: number;
  preemptions: number;
  arrivalMs: number;
  firstTokenMs: number;
  finishMs: number;
}

/**
 * Called when a step ends, with the step's end time. Handlers may submit and cancel requests
 * (a request submitted there waits for the next step), but not call step(). A handler that
 * throws skips its own request's remaining handlers for that step, not other requests';
 * step() rethrows the first error once all have run.
 */
export interface RequestHandlers {
  onFirstToken?(timeMs: number, req: EngineRequest): void;
  /** Each token, the first included; `index` counts from 0. */
  onToken?(index: number, timeMs: number, req: EngineRequest): void;
  onFinish?(summary: RequestSummary, req: EngineRequest): void;
}

export type RequestState = 'waiting' | 'running' | 'finished' | 'cancelled';

/** What submit() hands back. */
export interface EngineRequest {
  readonly id: string;
  readonly state: RequestState;
  /** Tokens generated so far. */
  readonly generated: number;
  readonly preemptions: number;
  /** Stops the request and frees its blocks at once; no handler is called for it any more. */
  cancel(): void;
}

/** What one planned step does (the one in flight, while its end is in the future). */
export interface StepInfo {
  startMs: number;
  endMs: number;
  prefillTokens: number;
  decodeSeqs: number;
  /** Requests in the batch. */
  requests: number;
}

/** Count, sum and maximum of a latency (ms). */
export class Observations {
  count = 0;
  sum = 0;
  max = 0;

  observe(ms: number): void {
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }
}

/**
 * Cumulative counters, named for the vLLM metrics they feed; the gauges (vllm:num_requests_running,
 * vllm:num_requests_waiting, vllm:kv_cache_usage_perc) are the engine's getters.
 */
export class EngineStats {
  /** vllm:prompt_tokens_total: prompt tokens of requests admitted (counted once a request). */
  promptTokens = 0;
  /** Prompt (and recomputed) tokens actually prefilled: what the cache did not save. */
  prefillTokens = 0;
  /** vllm:generation_tokens_total */
  generationTokens = 0;
  /** vllm:prefix_cache_queries_total: tokens looked up, at each admission (readmissions too). */
  prefixQueries = 0;
  /** vllm:prefix_cache_hits_total: tokens found. */
  prefixHits = 0;
  /** vllm:num_preemptions_total */
  preemptions = 0;
  /** vllm:request_success_total (every request finishes by length here). */
  finished = 0;
  cancelled = 0;
  steps = 0;
  /** Time spent in steps (ms); busyMs / elapsed is the engine's utilisation. */
  busyMs = 0;
  /** vllm:time_to_first_token_seconds (here in ms): arrival to first token, queueing included. */
  readonly ttft = new Observations();
  /** vllm:inter_token_latency_seconds (in ms): between consecutive tokens of a request. */
  readonly itl = new Observations();
}

export interface EngineOptions {
  /**
   * How far behind the clock a step may start (ms), at the end of the previous one, when the
   * driver came late (a real-time timer's slop): it keeps the engine's pace independent of timer
   * jitter, while beyond it the engine resyncs to the clock (the host was too busy). A step never
   * starts before the arrival of a request it admits. Default 0 (virtual time is never late).
   */
  catchUpMs?: number;
  /**
   * Most decode steps run as one when they take no time (a zero-time profile such as `fast`),
   * every running request decodes and none waits: nothing can change between them, so each
   * request's tokens of those steps are emitted together, in order, at the same time as step by
   * step; only the interleaving of different requests' handler calls differs (a request's tokens
   * come together). stats.steps counts them one by one. Default 1: step by step.
   */
  maxZeroTimeBurst?: number;
}

class TrackedRequest implements EngineRequest {
  state: RequestState = 'waiting';
  generated = 0;
  preemptions = 0;
  /** Tokens whose KV is computed. */
  computed = 0;
  /** Leading blocks already considered for the prefix index. */
  indexed = 0;
  /** True once the prompt (or a recompute) is done: the request takes one token a step. */
  decoding = false;
  /** Tokens sampled by the step that just ended (more than 1 in a zero-time burst). */
  sampled = 0;
  admitted = false;
  cachedTokens = 0;
  firstTokenMs = 0;
  lastTokenMs = 0;
  readonly blocks: BlockList = [];

  constructor(
    private readonly engine: EngineModel,
    readonly id: string,
    readonly promptTokens: number,
    readonly maxTokens: number,
    readonly hashes: readonly number[],
    readonly handlers: RequestHandlers,
    readonly arrivalMs: number,
  ) {}

  /** Tokens of the sequence so far: the prompt and every sampled token. */
  get numTokens(): number {
    return this.promptTokens + this.generated;
  }

  cancel(): void {
    this.engine.cancel(this);
  }
}

const NO_HASHES: readonly number[] = [];

export class EngineModel {
  readonly pool: KvBlockPool;
  readonly stats = new EngineStats();
  /** Called when work arrives at an idle engine (nextEventTime() was undefined): a driver arms its timer. */
  onWork: (() => void) | undefined;
  private readonly catchUpMs: number;
  private readonly maxBurst: number;
  private readonly waiting: TrackedRequest[] = [];
  private readonly running: TrackedRequest[] = [];
  /**
   * The step in flight: its first `batchSize` requests and the tokens each computes. Counts and
   * plain fields rather than arrays emptied and an object made every step: a zero-time engine (the
   * fast profile) runs a step per token, so a step's bookkeeping is the mock's hot path.
   */
  private readonly batch: Array<TrackedRequest | undefined> = [];
  private readonly batchTokens: number[] = [];
  private batchSize = 0;
  /** The step in flight's end, undefined when there is none; its other figures below. */
  private stepEnd: number | undefined;
  private stepStart = 0;
  private stepPrefill = 0;
  private stepDecodes = 0;
  /** currentStep's object, made once a step when asked for. */
  private stepInfo: StepInfo | undefined;
  /** When work arrived at an idle engine: the next step may start then. */
  private wakeAt: number | undefined;
  /** Requests that sampled a token in the step that just ended: the first `emittedSize`. */
  private readonly emitted: Array<TrackedRequest | undefined> = [];
  private emittedSize = 0;
  private stepping = false;
  private seq = 0;

  constructor(
    readonly profile: EngineProfile,
    readonly clock: Clock = realClock,
    options: EngineOptions = {},
  ) {
    const p = profile;
    const whole = (v: number, min: number) => Number.isInteger(v) && v >= min;
    const time = (v: number) => Number.isFinite(v) && v >= 0;
    if (!whole(p.maxBatchedTokens, 1) || !whole(p.maxRunning, 1) || !whole(p.kvBlocks, 1) || !whole(p.blockSize, 1) || !whole(p.cacheBlocks, 0)) {
      throw new RangeError('engine profile: maxBatchedTokens, maxRunning, kvBlocks and blockSize must be integers >= 1, cacheBlocks >= 0');
    }
    if (!time(p.stepMs) || !time(p.prefillMsPerToken) || !time(p.decodeMsPerSeq) || !time(p.prefillStepMs ?? 0) || !time(p.decodeStepMs ?? 0)) throw new RangeError('engine profile: times must be finite and >= 0');
    this.catchUpMs = options.catchUpMs ?? 0;
    this.maxBurst = Math.max(1, Math.floor(options.maxZeroTimeBurst ?? 1));
    this.pool = new KvBlockPool(p.kvBlocks, p.blockSize, p.cacheBlocks);
  }

  /** vllm:num_requests_running */
  get numRunning(): number {
    return this.running.length;
  }

  /** vllm:num_requests_waiting (preempted requests included) */
  get numWaiting(): number {
    return this.waiting.length;
  }

  /** vllm:kv_cache_usage_perc, 0 to 1: blocks held by requests (cached free blocks count as free). */
  get kvUsage(): number {
    return this.pool.used / this.pool.capacity;
  }

  /** The step in flight, if any. */
  get currentStep(): StepInfo | undefined {
    if (this.stepEnd === undefined) return undefined;
    return (this.stepInfo ??= { startMs: this.stepStart, endMs: this.stepEnd, prefillTokens: this.stepPrefill, decodeSeqs: this.stepDecodes, requests: this.batchSize });
  }

  /** Whether a request can ever run: its whole sequence must fit in the KV cache (vLLM rejects longer ones). */
  fits(promptTokens: number, maxTokens: number): boolean {
    return this.blocksFor(promptTokens + maxTokens - 1) <= this.pool.capacity;
  }

  /** Queues a request. Throws a RangeError for counts below 1 or a request that can never fit (check fits() first). */
  submit(spec: RequestSpec, handlers: RequestHandlers = {}): EngineRequest {
    const { promptTokens, maxTokens } = spec;
    if (!Number.isInteger(promptTokens) || promptTokens < 1 || !Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new RangeError(`engine request: promptTokens and maxTokens must be integers >= 1 (got ${promptTokens}, ${maxTokens})`);
    }
    if (!this.fits(promptTokens, maxTokens)) {
      throw new RangeError(`engine request: ${promptTokens} + ${maxTokens} tokens exceed the KV cache (${this.pool.capacity} blocks of ${this.pool.blockSize})`);
    }
    const now = this.clock.now();
    const r = new TrackedRequest(this, spec.id ?? String(++this.seq), promptTokens, maxTokens, spec.blockHashes ?? NO_HASHES, handlers, now);
    this.waiting.push(r);
    if (this.stepEnd === undefined && this.wakeAt === undefined) {
      this.wakeAt = now;
      this.onWork?.();
    }
    return r;
  }

  /** See EngineRequest.cancel. */
  cancel(req: EngineRequest): void {
    const r = req as TrackedRequest;
    if (r.state === 'waiting') remove(this.waiting, r);
    else if (r.state === 'running') {
      remove(this.running, r);
      this.pool.release(r.blocks);
    } else return;
    r.state = 'cancelled';
    this.stats.cancelled++;
  }

  /**
   * When step() has something to do: the end of the step in flight, or when work arrived at an
   * idle engine; undefined when there is nothing to do.
   */
  nextEventTime(): number | undefined {
    return this.stepEnd ?? this.wakeAt;
  }

  /**
   * Ends the step in flight if the clock has reached its end (emitting its tokens), and plans
   * the next one if there is work. Returns false if it was not time yet. `now`: the clock's
   * reading, when the caller has just taken it (a driver running several due steps).
   */
  step(now = this.clock.now()): boolean {
    if (this.stepping) throw new Error('engine model: step() called from a request handler');
    let prevEnd: number;
    if (this.stepEnd !== undefined) {
      if (now < this.stepEnd) return false;
      prevEnd = this.stepEnd;
      this.complete(prevEnd);
      this.stepEnd = undefined;
      this.stepInfo = undefined;
    } else if (this.wakeAt !== undefined) {
      prevEnd = this.wakeAt;
    } else return false;
    this.wakeAt = undefined;
    this.plan(Math.max(prevEnd, now - this.catchUpMs));
    this.emit(prevEnd);
    return true;
  }

  /** Recounts the KV blocks from the requests' lists; throws on any inconsistency (for tests). */
  audit(): void {
    this.pool.audit(this.running.map((r) => r.blocks));
    for (const r of this.waiting) if (r.blocks.length > 0) throw new Error(`KV block audit: waiting request ${r.id} holds blocks`);
  }

  private blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.pool.blockSize);
  }

  private plan(earliestStart: number): void {
    const { batch, batchTokens, running, waiting, profile } = this;
    let size = 0;
    let budget = profile.maxBatchedTokens;
    let prefillTokens = 0;
    let decodeSeqs = 0;
    let preempted = false;
    let start = earliestStart;

    // 1. one token for each decoding request, oldest first; a missing block preempts the newest
    for (let i = 0; i < running.length && budget > 0; i++) {
      const r = running[i]!;
      if (!r.decoding) continue;
      if (this.blocksFor(r.computed + 1) > r.blocks.length) {
        let self = false;
        while (!this.pool.allocate(1, r.blocks)) {
          const victim = running.pop()!;
          this.preempt(victim);
          preempted = true;
          if (victim === r) {
            self = true;
            break;
          }
        }
        if (self) break; // r was the newest: nothing after it
      }
      batch[size] = r;
      batchTokens[size++] = 1;
      budget--;
      decodeSeqs++;
    }
    // 2. the rest of the budget to prompts already being prefilled, in admission order
    for (let i = 0; i < running.length && budget > 0; i++) {
      const r = running[i]!;
      if (r.decoding) continue;
      const n = Math.min(r.numTokens - r.computed, budget);
      batch[size] = r;
      batchTokens[size++] = n;
      budget -= n;
      prefillTokens += n;
    }
    // 3. then to waiting requests, FIFO, unless this step had to preempt
    if (!preempted) {
      while (budget > 0 && waiting.length > 0 && running.length < profile.maxRunning) {
        const r = waiting[0]!;
        if (!this.admit(r)) break;
        waiting.shift();
        running.push(r);
        r.state = 'running';
        const n = Math.min(r.numTokens - r.computed, budget);
        batch[size] = r;
        batchTokens[size++] = n;
        budget -= n;
        prefillTokens += n;
        if (r.arrivalMs > start) start = r.arrivalMs;
      }
    }

    this.batchSize = size;
    if (size === 0) {
      // unreachable: the oldest running request can always go on, and with none running the
      // head of the queue fits (submit checked that it fits an empty cache)
      if (running.length > 0 || waiting.length > 0) throw new Error('engine model: work left but nothing schedulable');
      return;
    }
    const end = start + stepDurationMs(profile, prefillTokens, decodeSeqs);
    let steps = 1;
    if (end === start && this.maxBurst > 1 && prefillTokens === 0 && waiting.length === 0 && size === running.length) {
      // a zero-time burst: as many decode steps as no request finishes or needs a new block
      steps = this.maxBurst;
      const blockSize = this.pool.blockSize;
      for (let i = 0; i < size && steps > 1; i++) {
        const r = batch[i]!;
        steps = Math.min(steps, r.maxTokens - r.generated, r.blocks.length * blockSize - r.computed);
      }
      for (let i = 0; i < size; i++) batchTokens[i] = steps;
    }
    this.stepStart = start;
    this.stepEnd = end;
    this.stepPrefill = prefillTokens;
    this.stepDecodes = decodeSeqs;
    this.stats.steps += steps;
    this.stats.busyMs += end - start;
    this.stats.prefillTokens += prefillTokens;
  }

  /** Takes the head of the queue if its blocks are available: prefix-cache hits, then new blocks for the rest. */
  private admit(r: TrackedRequest): boolean {
    const pool = this.pool;
    const numTokens = r.numTokens;
    // hits stop one token short of the end: the last token is always computed, to sample from
    const m = pool.match(r.hashes, Math.floor((numTokens - 1) / pool.blockSize));
    const need = this.blocksFor(numTokens) - m.blocks;
    if (need > pool.available - m.cachedBlocks) return false;
    pool.acquire(r.hashes, m.blocks, r.blocks);
    pool.allocate(need, r.blocks);
    r.computed = m.blocks * pool.blockSize;
    r.indexed = m.blocks;
    this.stats.prefixQueries += numTokens;
    this.stats.prefixHits += r.computed;
    if (!r.admitted) {
      r.admitted = true;
      r.cachedTokens = r.computed;
      this.stats.promptTokens += r.promptTokens;
    }
    return true;
  }

  private preempt(r: TrackedRequest): void {
    this.pool.release(r.blocks);
    r.state = 'waiting';
    r.computed = 0;
    r.indexed = 0;
    r.decoding = false;
    r.preemptions++;
    this.stats.preemptions++;
    this.waiting.unshift(r);
  }

  /** Applies the step in flight: computed tokens, newly full blocks indexed, sampled tokens, finished requests. */
  private complete(endMs: number): void {
    const { batch, batchTokens, pool, stats } = this;
    const blockSize = pool.blockSize;
    let finished = false;
    const size = this.batchSize;
    for (let i = 0; i < size; i++) {
      const r = batch[i]!;
      batch[i] = undefined; // no reference kept to a finished request
      if (r.state !== 'running') continue; // cancelled meanwhile
      r.computed += batchTokens[i]!;
      const full = Math.min(Math.floor(r.computed / blockSize), r.blocks.length, r.hashes.length);
      while (r.indexed < full) {
        const k = r.indexed++;
        if (r.blocks[k] === undefined) r.blocks[k] = pool.register(r.hashes[k]!);
      }
      if (r.computed < r.numTokens) continue; // prompt not done yet
      // one token, or one per step of a zero-time burst
      const sampled = r.computed - r.numTokens + 1;
      r.sampled = sampled;
      r.generated += sampled;
      r.decoding = true;
      stats.generationTokens += sampled;
      if (r.generated === sampled) {
        r.firstTokenMs = endMs;
        stats.ttft.observe(endMs - r.arrivalMs);
      } else stats.itl.observe(endMs - r.lastTokenMs);
      for (let j = 1; j < sampled; j++) stats.itl.observe(0);
      r.lastTokenMs = endMs;
      if (r.generated === r.maxTokens) {
        pool.release(r.blocks);
        r.state = 'finished';
        stats.finished++;
        finished = true;
      }
      this.emitted[this.emittedSize++] = r;
    }
    if (finished) {
      let j = 0;
      for (const r of this.running) if (r.state === 'running') this.running[j++] = r;
      this.running.length = j;
    }
  }

  /** Calls the handlers of the tokens sampled by the step that ended at `timeMs`. */
  private emit(timeMs: number): void {
    const emitted = this.emitted;
    const size = this.emittedSize;
    if (size === 0) return;
    this.stepping = true;
    let error: unknown;
    let failed = false;
    try {
      for (let i = 0; i < size; i++) {
        const r = emitted[i]!;
        emitted[i] = undefined;
        if (r.state === 'cancelled') continue; // by an earlier handler of this step
        const h = r.handlers;
        try {
          // a handler that cancels its own request stops its burst's tokens too
          for (let j = r.generated - r.sampled; j < r.generated && (r.state as RequestState) !== 'cancelled'; j++) {
            if (j === 0) h.onFirstToken?.(timeMs, r);
            h.onToken?.(j, timeMs, r);
          }
          if (r.state === 'finished') h.onFinish?.(summary(r, timeMs), r);
        } catch (err) {
          if (!failed) error = err;
          failed = true;
        }
      }
    } finally {
      this.emittedSize = 0;
      this.stepping = false;
    }
    if (failed) throw error;
  }
}

function summary(r: TrackedRequest, finishMs: number): RequestSummary {
  return {
    id: r.id,
    promptTokens: r.promptTokens,
    cachedTokens: r.cachedTokens,
    outputTokens: r.generated,
    preemptions: r.preemptions,
    arrivalMs: r.arrivalMs,
    firstTokenMs: r.firstTokenMs,
    finishMs,
  };
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i !== -1) list.splice(i, 1);
}
