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
import { PrefixCache } from './prefix-cache.js';
import { RequestContext } from './request-context.js';
import { BatchScheduler } from './scheduler.js';
import { embed, generate } from './text-generator.js';
import { countTokens, memoize, tokenIds } from './tokenizer.js';

const BODY_LIMIT = 64 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' };

const ROUTES: Record<string, Endpoint> = {
  '/v1/chat/completions': 'chat',
  '/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/completions': 'completions',
  '/v1/embeddings': 'embeddings',
  '/embeddings': 'embeddings',
};

/** An OpenAI-compatible simulated inference engine (timing, batch slots, prefix cache, faults). */
export class MockServer {
  readonly http: Http1Server;
  readonly scheduler: BatchScheduler;
  readonly cache: PrefixCache;
  readonly metrics: MockMetrics;
  port = 0;
  requests = 0;
  private seq = 0;
  private readonly models: Set<string>;
  private readonly faults: FaultInjector;
  private readonly createdAt = Math.floor(Date.now() / 1000);
  private readonly modelList: string;
  private readonly promptTokenIds = memoize(tokenIds);

  constructor(
    readonly opts: MockOptions,
    private readonly log: Logger,
  ) {
    this.models = new Set(opts.models);
    this.scheduler = new BatchScheduler(opts.maxConcurrency);
    this.cache = new PrefixCache(opts.cache.blockSize, opts.cache.capacityBlocks);
    this.faults = new FaultInjector(opts.faults, opts.seed);
    this.metrics = new MockMetrics(opts.models, {
      running: () => this.scheduler.running,
      waiting: () => this.scheduler.waiting,
      cacheUsage: () => (opts.cache.capacityBlocks > 0 ? this.cache.usedBlocks / opts.cache.capacityBlocks : 0),
      prefixQueries: () => this.cache.queriedTokens,
      prefixHits: () => this.cache.hitTokens,
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
    const work = parsed.kind === 'embeddings' ? this.embeddings(parsed, res, ctx) : this.generation(parsed, res, ctx, plan);
    work.catch((err: unknown) => this.failed(res, err, 'mock request failed'));
  }

  /** A failure of ours: logged with its error; the client gets a 500, or a cut-off answer once it has begun. */
  private failed(res: Http1Response, err: unknown, msg: string): void {
    this.log.error({ err }, msg);
    if (!res.headersSent) sendOpenAIError(res, { status: 500, message: 'internal error', type: 'server_error', code: null });
    else res.destroy();
  }

  /** Waits for a batch slot (none was free); false if the client went away meanwhile. */
  private async waitForSlot(ctx: RequestContext): Promise<boolean> {
    let granted = false;
    await new Promise<void>((resolve) => {
      const waiter = this.scheduler.enqueue(() => {
        granted = true;
        resolve();
      });
      ctx.onCancel = () => {
        if (this.scheduler.remove(waiter)) resolve();
      };
    });
    ctx.onCancel = undefined;
    if (granted && ctx.cancelled) {
      this.scheduler.release();
      return false;
    }
    return granted;
  }

  /** Prefix-cache lookup and insert for each prompt; returns prompt tokens and uncached tokens. */
  private prefill(prompts: string[], ids: Array<number[] | undefined>): { promptTokens: number; uncached: number } {
    let promptTokens = 0;
    let uncached = 0;
    for (let i = 0; i < prompts.length; i++) {
      const tokens = ids[i] ?? this.promptTokenIds(prompts[i]!);
      const keys = this.cache.blockKeys(tokens);
      const hit = this.cache.lookup(tokens, keys);
      this.cache.insert(keys);
      promptTokens += tokens.length;
      uncached += tokens.length - hit;
    }
    return { promptTokens, uncached };
  }

  private async generation(r: GenerationRequest, res: Http1Response, ctx: RequestContext, plan: FaultPlan): Promise<void> {
    const t0 = performance.now();
    // a free slot is taken synchronously: without simulated delays the whole answer is written in
    // this call, with no promise to wait on
    if (!this.scheduler.tryAcquire() && !(await this.waitForSlot(ctx))) return;
    try {
      const { promptTokens, uncached } = this.prefill(r.prompts, r.promptTokenIds);
      const { ttftMs, prefillMsPerToken, itlMs } = this.opts.timing;
      const prefillMs = ttftMs + prefillMsPerToken * uncached;
      if (prefillMs > 0) {
        await ctx.sleep(prefillMs);
        if (ctx.cancelled) return;
      }
      const m = this.metrics.model(r.model);
      m.requests++;
      m.ttft.observe((performance.now() - t0) / 1000);
      m.promptTokens += promptTokens;
      const outputs = r.prompts.map((prompt) => generate({ seed: this.opts.seed, name: this.opts.name, model: r.model, prompt, outputTokens: this.opts.outputTokens, maxTokens: r.maxTokens }));
      const completionTokens = outputs.reduce((n, o) => n + o.tokens.length, 0);
      const u = usage(promptTokens, completionTokens);
      const id = `${r.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${this.opts.name}-${++this.seq}`;
      const created = Math.floor(Date.now() / 1000);

      if (r.stream) {
        const fmt = new ChunkFormatter(r.kind, id, created, r.model, this.opts.name, r.includeUsage);
        res.writeHead(200, SSE_HEADERS);
        let chunks = 0;
        let firstToken = true;
        const write = (text: string): boolean => {
          res.write(text);
          chunks++;
          if (plan.dropAfterChunks !== undefined && chunks >= plan.dropAfterChunks) {
            this.metrics.faults.inc({ kind: 'drop' });
            res.destroySoon(); // the client sees a cut-off body
            return false;
          }
          return true;
        };
        for (let i = 0; i < outputs.length; i++) {
          if (r.kind === 'chat' && !write(fmt.roleChunk(i))) return;
          for (const token of outputs[i]!.tokens) {
            if (itlMs > 0 && !firstToken) {
              await ctx.sleep(itlMs);
              if (ctx.cancelled) return;
            }
            firstToken = false;
            if (!write(fmt.token(i, token))) return;
          }
          if (!write(fmt.finish(i, outputs[i]!.finishReason))) return;
        }
        if (r.includeUsage) res.write(fmt.usage(u));
        res.end(DONE);
      } else {
        const longest = Math.max(...outputs.map((o) => o.tokens.length));
        if (itlMs > 0 && longest > 1) {
          await ctx.sleep(itlMs * (longest - 1));
          if (ctx.cancelled) return;
        }
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
    } finally {
      this.scheduler.release();
    }
  }

  private async embeddings(r: EmbeddingRequest, res: Http1Response, ctx: RequestContext): Promise<void> {
    const promptTokens = r.inputs.reduce((n, text, i) => n + (r.tokenInputs[i]?.length ?? countTokens(text)), 0);
    const prefillMs = this.opts.timing.ttftMs + this.opts.timing.prefillMsPerToken * promptTokens;
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
  close(): Promise<void> {
    return this.http.close(2000);
  }
}

export type { OpenAIError };
