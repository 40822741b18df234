import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ProbeGuard } from '../common/guarded-lookup.js';
import type { Logger } from '../common/log.js';
import { ProbeScheduler, type ProbeOutcome } from '../common/probe-scheduler.js';
import type { Backend } from './backend.js';
import { probeBackends, type BackendSet } from './backend-set.js';

/** What a backend's engine said of its load at its last scrape (see EngineSignals). */
export interface EngineSnapshot {
  /** Requests waiting in the engine's queue (all its models). */
  waiting: number;
  /** Requests running in the engine. */
  running: number;
  /** Fraction of the KV cache in use, 0..1 (the highest the engine reports). */
  kvUsage: number;
  /** When it was read (Date.now()). */
  at: number;
}

/** Gauge names by meaning: vLLM's (v0 and v1 spellings) and SGLang's. */
const WAITING = ['vllm:num_requests_waiting', 'sglang:num_queue_reqs'];
const RUNNING = ['vllm:num_requests_running', 'sglang:num_running_reqs'];
const KV_USAGE = ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc', 'sglang:token_usage'];

/** The most of a /metrics answer read (vLLM's is tens of KB); a longer one is cut and read as far as it goes. */
const MAX_BYTES = 4 * 1024 * 1024;
/** Scrapes under way at once, for all backends. */
const CONCURRENCY = 16;

/** The values of every sample of `name` in a Prometheus text answer (labels ignored). */
function samples(text: string, name: string, each: (v: number) => void): void {
  let from = 0;
  for (;;) {
    const at = text.indexOf(name, from);
    if (at === -1) return;
    from = at + name.length;
    // at a line's start (not in a # HELP line), and not a longer name sharing the prefix
    if (at > 0 && text.charCodeAt(at - 1) !== 0x0a) continue;
    const after = text.charCodeAt(from);
    if (after !== 0x7b && after !== 0x20) continue;
    let end = text.indexOf('\n', from);
    if (end === -1) end = text.length;
    const close = after === 0x7b ? text.lastIndexOf('}', end) : from;
    if (close < from) continue;
    const field = text.slice(close + 1, end).trim().split(/\s+/)[0]!;
    const v = field === '' ? NaN : Number(field);
    if (Number.isFinite(v)) each(v);
    from = end;
  }
}

/** Reads the engine gauges of a /metrics answer; undefined when it has none of them. */
export function parseEngineMetrics(text: string, at: number): EngineSnapshot | undefined {
  let found = false;
  let waiting = 0;
  let running = 0;
  let kvUsage = 0;
  for (const name of WAITING) samples(text, name, (v) => ((waiting += v), (found = true)));
  for (const name of RUNNING) samples(text, name, (v) => ((running += v), (found = true)));
  for (const name of KV_USAGE) samples(text, name, (v) => ((kvUsage = Math.max(kvUsage, v)), (found = true)));
  return found ? { waiting, running, kvUsage: Math.min(1, kvUsage), at } : undefined;
}

/**
 * GETs a URL's body as text, at most MAX_BYTES of it, within `timeoutMs`; rejects on any failure or a
 * non-200. http or https (as the backend is proxied); under a `guard`, only to addresses it allows,
 * as the health checks and the proxied requests of the same backend.
 */
function scrape(url: string, timeoutMs: number, guard?: ProbeGuard): Promise<string> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    if (target.protocol !== 'http:' && target.protocol !== 'https:') return reject(new Error(`unsupported scheme ${target.protocol}`));
    if (guard?.refuses(target)) return reject(new Error('address refused by the address policy'));
    const get = target.protocol === 'https:' ? httpsRequest : request;
    const req = get(target, { agent: false, timeout: timeoutMs, headers: { accept: 'text/plain' }, ...(guard ? { lookup: guard.lookup } : {}) }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`status ${res.statusCode}`));
        return;
      }
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        if (bytes >= MAX_BYTES) return;
        chunks.push(c);
        bytes += c.length;
        if (bytes >= MAX_BYTES) res.destroy();
      });
      res.on('error', reject);
      res.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    const timer = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
    req.on('error', reject);
    req.on('close', () => clearTimeout(timer));
    req.end();
  });
}

export interface EngineSignalsOptions {
  intervalMs: number;
  /** Whether a backend's engine is wanted (one of its models is routed by a policy that scores engine signals). */
  wanted: (b: Backend) => boolean;
  log: Logger;
}

/**
 * Polls the engine gauges (waiting, running, KV usage) from each wanted backend's own /metrics, once
 * per interval at its own phase of it, at most CONCURRENCY at once (ProbeScheduler), each scrape
 * bounded in time (the interval, at most 2 s) and size. A failed scrape changes nothing but its
 * counter: the last snapshot ages out (policies ignore one older than `staleMs`).
 */
export class EngineSignals {
  private readonly scheduler: ProbeScheduler<Backend>;
  readonly counts = { ok: 0, failed: 0 };
  /** Snapshots older than this are not used (three intervals: two scrapes missed). */
  readonly staleMs: number;

  constructor(
    private readonly backends: BackendSet,
    private readonly opts: EngineSignalsOptions,
  ) {
    this.staleMs = 3 * opts.intervalMs;
    const timeoutMs = Math.min(opts.intervalMs, 2000);
    this.scheduler = new ProbeScheduler<Backend>({
      intervalMs: opts.intervalMs,
      concurrency: CONCURRENCY,
      first: 'now',
      inconclusiveRetryMs: opts.intervalMs,
      probe: (b) => this.probe(b, timeoutMs),
      onError: (err, name) => opts.log.error({ err, backend: name }, 'engine metrics scrape failed unexpectedly'),
    });
    this.start = probeBackends(backends, this.scheduler);
  }

  /** Starts probing (every backend known by then, and each that joins). */
  readonly start: () => void;

  stop(): Promise<void> {
    return this.scheduler.stop();
  }

  private async probe(b: Backend, timeoutMs: number): Promise<ProbeOutcome> {
    if (this.backends.get(b.name) !== b) return 'gone';
    if (!this.opts.wanted(b)) return 'ok';
    try {
      const text = await scrape(`${b.url.replace(/\/+$/, '')}/metrics`, timeoutMs, b.probeGuard);
      const snap = parseEngineMetrics(text, Date.now());
      if (snap === undefined) throw new Error('no engine gauges');
      b.engine = snap;
      this.counts.ok++;
      return 'ok';
    } catch (err) {
      this.counts.failed++;
      this.opts.log.debug({ backend: b.name, err: (err as Error).message }, 'engine metrics scrape failed');
      return 'failed';
    }
  }
}
