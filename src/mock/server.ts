import type { Server } from 'node:net';
import type { Http1Response } from '../common/http1/response.js';
import { Http1Server, type Http1Request } from '../common/http1/server.js';
import type { Logger } from '../common/log.js';
import { protocolErrorBody, sendOpenAIError } from '../common/openai-error.js';
import { FaultInjector, type FaultPlan } from './faults.js';
import { MockMetrics } from './metrics.js';
import { isOpenAIError, parseRequest, type EmbeddingRequest, type Endpoint, type GenerationRequest, type OpenAIError } from './openai-request.js';
import { ChunkFormatter, DONE, completionBody, embeddingsResponse, usage, type ChoiceResult } from './openai-response.js';
import type { MockOptions } from './options.js';
import { RealTimeDriver } from './engine-driver.js';
import { EngineModel, type EngineRequest, type RequestHandlers } from './engine-model.js';
import { chainedBlockHashes } from './kv-blocks.js';
import { RequestContext } from './request-context.js';
import { SseStream, flushStreams } from './sse-stream.js';
import { embed, generate, type Generation } from './text-generator.js';
import { countTokens, memoize, tokenIds } from './tokenizer.js';

const BODY_LIMIT = 64 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' };
/** How far behind the clock an engine step may start (timer slop), see EngineOptions.catchUpMs. */
const CATCH_UP_MS = 2;
/**
 * Zero-time decode steps run as one, up to this many (EngineOptions.maxZeroTimeBurst): the fast
 * profile's answer costs a few engine steps rather than one per token, as the mock before the
 * engine model wrote a whole answer at once. Bounded by the driver's 64 steps a run anyway.
 */
const ZERO_TIME_BURST = 64;
/** Token ids of "assistant", ":": the generation prompt a chat's answer follows, as a chat template adds it. */
const CHAT_GENERATION_PROMPT = tokenIds('assistant:');
const NO_IDS: readonly number[] = [];

const ROUTES: Record<string, Endpoint> = {
  '/v1/chat/completions': 'chat',
  '/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/completions': 'completions',
  '/v1/embeddings': 'embeddings',
  '/embeddings': 'embeddings',
};

/**
 * An OpenAI-compatible simulated inference engine: each generation is a request to a
 * continuous-batching engine model (engine-model.ts) driven in real time, plus faults.
 */
export class MockServer {
  readonly http: Http1Server;
  readonly engine: EngineModel;
  readonly metrics: MockMetrics;
  port = 0;
  requests = 0;
  private seq = 0;
  private readonly models: Set<string>;
  private readonly faults: FaultInjector;
  private readonly createdAt = Math.floor(Date.now() / 1000);
  private readonly modelList: string;
  private readonly promptTokenIds = memoize(tokenIds);
  private readonly driver: RealTimeDriver;
  /** Streams whose events of the current run of engine steps are not sent yet. */
  private readonly outbox: SseStream[] = [];

  constructor(
    readonly opts: MockOptions,
    private readonly log: Logger,
  ) {
    this.models = new Set(opts.models);
    this.engine = new EngineModel(opts.engine, undefined, { catchUpMs: CATCH_UP_MS, maxZeroTimeBurst: ZERO_TIME_BURST });
    const outbox = this.outbox;
    this.driver = new RealTimeDriver(this.engine, (err) => this.log.error({ err }, 'engine step failed'), undefined, () => flushStreams(outbox));
    this.faults = new FaultInjector(opts.faults, opts.seed);
    const engine = this.engine;
    this.metrics = new MockMetrics(opts.models, {
      running: () => engine.numRunning,
      waiting: () => engine.numWaiting,
      cacheUsage: () => engine.kvUsage,
      prefixQueries: () => engine.stats.prefixQueries,
      prefixHits: () => engine.stats.prefixHits,
      preemptions: () => engine.stats.preemptions,
      cachedBlocks: () => engine.pool.cached,
    });
    this.modelList = JSON.stringify({ object: 'list', data: this.modelObjects() });
    this.http = new Http1Server((req, res) => this.handle(req, res), { maxBodyBytes: BODY_LIMIT, errorBody: protocolErrorBody });
  }

  get server(): Server {
    return this.http.server;
  }

  modelObjects(): Array<{ id: string; object: string; created: number; owned_by: string }> {
    return this.opts.models.map((id) => ({ id, object: 'model', created: this.createdAt, owned_by: 'infini-mock' }));
  }

  /** Set by the freeze fault: the engine hangs and answers nothing any more (health included). */
  private frozen = false;

  private handle(req: Http1Request, res: Http1Response): void {
    if (this.frozen) return;
    if (req.headers['x-mock-freeze'] !== undefined) {
      this.frozen = true;
      this.metrics.faults.inc({ kind: 'freeze' });
      this.log.warn('injected fault: engine frozen, answering nothing from now on');
      return;
    }
    const url = req.url;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const endpoint = ROUTES[path];
    if (endpoint !== undefined) {
      if (req.method !== 'POST') return this.methodNotAllowed(res, req.method, path, 'POST');
      this.requests++;
      return this.serve(endpoint, req, res, req.body ?? EMPTY);
    }
    if (path === '/v1/models' || path === '/models' || path === '/health' || path === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.methodNotAllowed(res, req.method, path, 'GET');
      if (path === '/health') return this.json(res, 200, JSON.stringify({ status: 'healthy', service: this.opts.name, port: this.port, requests: this.requests, models: this.opts.models }));
      if (path === '/metrics') {
        this.metrics
          .render()
          .then((text) => {
            res.writeHead(200, { 'content-type': this.metrics.registry.contentType, 'content-length': Buffer.byteLength(text) });
            res.end(text);
          })
          // unhandled, the rejection would end the process
          .catch((err: unknown) => this.failed(res, err, 'metrics could not be rendered'));
        return;
      }
      return this.json(res, 200, this.modelList);
    }
    sendOpenAIError(res, { status: 404, message: `Not found: ${req.method} ${path}`, type: 'invalid_request_error', code: 'not_found' });
  }

  private json(res: Http1Response, status: number, text: string): void {
    res.writeHead(status, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(text))]);
    res.end(text);
  }

  private methodNotAllowed(res: Http1Response, method: string, path: string, allow: string): void {
    sendOpenAIError(res, { status: 405, message: `Method ${method} not allowed on ${path}`, type: 'invalid_request_error', code: 'method_not_allowed' }, { allow });
  }

  private serve(endpoint: Endpoint, req: Http1Request, res: Http1Response, body: Buffer): void {
    const parsed = parseRequest(endpoint, body, this.models);
    if (isOpenAIError(parsed)) return sendOpenAIError(res, parsed);
    const plan = this.faults.plan(req.headers);
    if (plan.crash) {
      this.metrics.faults.inc({ kind: 'crash' });
      this.log.warn('injected fault: crashing the process');
      process.kill(process.pid, 'SIGKILL');
      return;
    }
    if (plan.errorStatus !== undefined) {
      this.metrics.faults.inc({ kind: 'error' });
      return sendOpenAIError(res, { status: plan.errorStatus, message: `injected fault: status ${plan.errorStatus}`, type: 'server_error', code: 'injected_fault' });
    }
    if (plan.hang) {
      // Never answer; the client's disconnect (or our shutdown) ends the connection.
      this.metrics.faults.inc({ kind: 'hang' });
      res.onClose = () => this.metrics.cancelled.inc();
      return;
    }
    const ctx = new RequestContext(res, () => this.metrics.cancelled.inc());
    if (parsed.kind === 'embeddings') this.embeddings(parsed, res, ctx).catch((err: unknown) => this.failed(res, err, 'mock request failed'));
    else {
      try {
        this.generation(parsed, res, ctx, plan);
      } catch (err) {
        this.failed(res, err, 'mock request failed');
      }
    }
  }

  /** A failure of ours: logged with its error; the client gets a 500, or a cut-off answer once it has begun. */
  private failed(res: Http1Response, err: unknown, msg: string): void {
    this.log.error({ err }, msg);
    if (!res.headersSent) sendOpenAIError(res, { status: 500, message: 'internal error', type: 'server_error', code: null });
    else res.destroy();
  }

  /**
   * The token ids the engine sees for one choice: the prompt's (a chat's followed by the
   * "assistant:" generation prompt, as a chat template ends) and the answer's. Their chained block
   * hashes let a later prompt that repeats prompt and answer (a chat's next turn) hit both.
   */
  private sequence(r: GenerationRequest, i: number, output: Generation): { promptTokens: number; hashes: number[] | undefined } {
    const prompt = r.promptTokenIds[i] ?? this.promptTokenIds(r.prompts[i]!);
    const generationPrompt = r.kind === 'chat' ? CHAT_GENERATION_PROMPT : NO_IDS;
    const promptTokens = Math.max(1, prompt.length + generationPrompt.length);
    if (this.opts.engine.cacheBlocks === 0) return { promptTokens, hashes: undefined };
    // one array of the right size (ids are 32-bit: doubles), no intermediate copies
    const ids = output.ids;
    const all = new Float64Array(prompt.length + generationPrompt.length + ids.length);
    all.set(prompt);
    all.set(generationPrompt, prompt.length);
    all.set(ids, prompt.length + generationPrompt.length);
    return { promptTokens, hashes: chainedBlockHashes(all, this.opts.engine.blockSize) };
  }

  private generation(r: GenerationRequest, res: Http1Response, ctx: RequestContext, plan: FaultPlan): void {
    const t0 = performance.now();
    const engine = this.engine;
    const outputs = r.prompts.map((prompt) => generate({ seed: this.opts.seed, name: this.opts.name, model: r.model, prompt, outputTokens: this.opts.outputTokens, maxTokens: r.maxTokens }));
    const seqs = outputs.map((o, i) => this.sequence(r, i, o));
    for (let i = 0; i < seqs.length; i++) {
      if (!engine.fits(seqs[i]!.promptTokens, Math.max(1, outputs[i]!.tokens.length))) {
        const { kvBlocks, blockSize } = this.opts.engine;
        return sendOpenAIError(res, {
          status: 400,
          message: `This model's KV cache holds ${kvBlocks * blockSize} tokens; the request needs ${seqs[i]!.promptTokens + outputs[i]!.tokens.length} (prompt and answer)`,
          type: 'invalid_request_error',
          code: 'context_length_exceeded',
        });
      }
    }
    let promptTokens = 0;
    for (let i = 0; i < r.prompts.length; i++) promptTokens += r.promptTokenIds[i]?.length ?? this.promptTokenIds(r.prompts[i]!).length;
    const completionTokens = outputs.reduce((n, o) => n + o.tokens.length, 0);
    const m = this.metrics.model(r.model);
    const id = `${r.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${this.opts.name}-${++this.seq}`;
    const created = Math.floor(Date.now() / 1000);
    const fmt = r.stream ? new ChunkFormatter(r.kind, id, created, r.model, this.opts.name, r.includeUsage) : undefined;
    const requests: EngineRequest[] = [];
    const cancelAll = () => {
      for (const q of requests) q.cancel();
    };
    let started = false;
    let unfinished = outputs.length;
    let dropped = false;
    // events are queued and sent once per run of engine steps (sse-stream.ts)
    const sse = fmt ? new SseStream(res, this.outbox) : undefined;
    /** A streamed event; false once the drop fault cut the connection. */
    const write = (text: string): boolean => {
      sse!.push(text);
      if (plan.dropAfterChunks !== undefined && sse!.events >= plan.dropAfterChunks) {
        this.metrics.faults.inc({ kind: 'drop' });
        dropped = true;
        cancelAll();
        sse!.flush();
        res.destroySoon(); // the client sees a cut-off body
        return false;
      }
      return true;
    };
    const finishAll = () => {
      const u = usage(promptTokens, completionTokens);
      if (fmt) sse!.end(r.includeUsage ? fmt.usage(u) + DONE : DONE);
      else {
        const choices: ChoiceResult[] = outputs.map((o) => ({ text: o.tokens.join(''), finishReason: o.finishReason }));
        const body = completionBody(r.kind, id, created, r.model, this.opts.name, choices, u);
        if (plan.dropAfterChunks !== undefined) {
          // Mid-body drop: headers and half of the body, then the connection goes away.
          this.metrics.faults.inc({ kind: 'drop' });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.write(body.slice(0, body.length >> 1));
          res.destroySoon(); // the client sees a cut-off body
          return;
        }
        this.json(res, 200, body);
      }
      m.generationTokens += completionTokens;
      for (const o of outputs) {
        if (o.finishReason === 'length') m.successLength++;
        else m.successStop++;
      }
      m.e2e.observe((performance.now() - t0) / 1000);
    };
    for (let i = 0; i < outputs.length; i++) {
      const tokens = outputs[i]!.tokens;
      let lastMs = 0;
      const handlers: RequestHandlers = {
        onToken: (index, timeMs) => {
          if (!started) {
            // the request's first token (of any choice): TTFT, and the stream's head
            started = true;
            m.requests++;
            m.promptTokens += promptTokens;
            m.ttft.observe(Math.max(0, timeMs - t0) / 1000);
            if (fmt) res.writeHead(200, SSE_HEADERS);
          }
          if (index > 0) m.itl.observe((timeMs - lastMs) / 1000);
          lastMs = timeMs;
          if (fmt) {
            if (index === 0 && r.kind === 'chat' && !write(fmt.roleChunk(i))) return;
            if (index < tokens.length && !write(fmt.token(i, tokens[index]!))) return;
          }
        },
        onFinish: () => {
          if (dropped) return;
          if (fmt && !write(fmt.finish(i, outputs[i]!.finishReason))) return;
          if (--unfinished === 0) finishAll();
        },
      };
      requests.push(engine.submit({ promptTokens: seqs[i]!.promptTokens, maxTokens: Math.max(1, tokens.length), blockHashes: seqs[i]!.hashes }, handlers));
    }
    ctx.onCancel = cancelAll;
    // a zero-time engine (the fast profile) answers within this call, with no timer hop
    this.driver.runDue();
  }

  private async embeddings(r: EmbeddingRequest, res: Http1Response, ctx: RequestContext): Promise<void> {
    const promptTokens = r.inputs.reduce((n, text, i) => n + (r.tokenInputs[i]?.length ?? countTokens(text)), 0);
    // not batched with generations: one prefill step of its own, as if alone
    const { stepMs, prefillStepMs = 0, prefillMsPerToken } = this.opts.engine;
    const prefillMs = stepMs + prefillStepMs + prefillMsPerToken * promptTokens;
    if (prefillMs > 0) {
      await ctx.sleep(prefillMs);
      if (ctx.cancelled) return;
    }
    const dims = r.dimensions ?? this.opts.embeddingDims;
    const vectors = r.inputs.map((text) => embed(text, dims, this.opts.seed));
    const m = this.metrics.model(r.model);
    m.requests++;
    m.promptTokens += promptTokens;
    this.json(res, 200, JSON.stringify(embeddingsResponse(r.model, vectors, r.base64, promptTokens)));
  }

  /** Closes the listener and ends open connections (hung requests included, after 2 s). */
  async close(): Promise<void> {
    await this.http.close(2000);
    this.driver.stop();
  }
}

export type { OpenAIError };
