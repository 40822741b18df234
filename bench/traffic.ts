/**
 * Light, open-loop chat traffic through a router with faults injected per request, each request
 * classified: a failure that no injected fault explains is "unexpected". Used by `npm run soak`
 * and by the time-compressed cluster test.
 */
import { mulberry32 } from '../src/mock/text-generator.js';

export type Outcome = 'ok' | 'injected-error' | 'injected-drop' | 'killed' | 'aborted' | 'unexpected';

export interface RequestRecord {
  start: number;
  end: number;
  stream: boolean;
  outcome: Outcome;
  detail?: string;
  /** The engine that answered (the mock's name, from `system_fingerprint`). */
  backend?: string;
}

export interface TrafficOptions {
  routerUrl: string;
  models: string[];
  /** Requests started per second (open loop: a slow answer does not slow the arrivals). */
  rate: number;
  /** Fraction of requests sent with `x-mock-error: 500` (the router passes it through). */
  errorRate: number;
  /** Fraction of streams sent with `x-mock-drop-after: 3` (the engine cuts them). */
  dropRate: number;
  /** Fraction of requests the client abandons, at a random moment within `abortWithinMs` (400). */
  abortRate: number;
  abortWithinMs?: number;
  seed: number;
  maxTokens?: number;
  /** Requests in flight at most; arrivals beyond are counted as not sent. */
  maxInFlight?: number;
  onUnexpected?: (r: RequestRecord) => void;
}

export interface TrafficSummary {
  total: number;
  ok: number;
  aborted_by_client: number;
  injected_errors: number;
  injected_drops: number;
  cut_by_engine_kill: number;
  unexpected: number;
  not_sent_over_concurrency_cap: number;
  error_rate: number;
  injected_rate: number;
  unexpected_rate: number;
}

export class Traffic {
  readonly records: RequestRecord[] = [];
  /** Engines killed on purpose: streams they were serving may be cut. */
  readonly kills: Array<{ at: number; backend: string }> = [];
  private readonly rand: () => number;
  private readonly inFlight = new Set<Promise<void>>();
  private skipped = 0;

  constructor(private readonly opts: TrafficOptions) {
    this.rand = mulberry32(opts.seed);
  }

  /** Records that the engine named `backend` (its mock name) is being killed now. */
  noteKill(backend: string): void {
    this.kills.push({ at: Date.now(), backend });
  }

  /**
   * Sends requests at the configured rate for `durationMs`; `tick(elapsedMs)` runs before each
   * arrival (to inject faults on a schedule). Resolves once every request has ended (or 30 s after).
   */
  async run(durationMs: number, tick?: (elapsedMs: number) => Promise<void>): Promise<void> {
    const t0 = Date.now();
    const intervalMs = 1000 / this.opts.rate;
    for (let i = 0; ; i++) {
      const due = t0 + i * intervalMs;
      if (due - t0 >= durationMs) break;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await tick?.(Date.now() - t0);
      if (this.inFlight.size >= (this.opts.maxInFlight ?? 200)) {
        this.skipped++;
        continue;
      }
      const p = this.one().then((r) => {
        this.records.push(r);
        if (r.outcome === 'unexpected') this.opts.onUnexpected?.(r);
      });
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
    await Promise.race([Promise.all(this.inFlight), new Promise((r) => setTimeout(r, 30_000).unref())]);
  }

  summary(): TrafficSummary {
    const count = (o: Outcome) => this.records.filter((r) => r.outcome === o).length;
    const total = this.records.length;
    const counted = total - count('aborted');
    const injected = count('injected-error') + count('injected-drop') + count('killed');
    return {
      total,
      ok: count('ok'),
      aborted_by_client: count('aborted'),
      injected_errors: count('injected-error'),
      injected_drops: count('injected-drop'),
      cut_by_engine_kill: count('killed'),
      unexpected: count('unexpected'),
      not_sent_over_concurrency_cap: this.skipped,
      error_rate: counted ? (counted - count('ok')) / counted : 0,
      injected_rate: counted ? injected / counted : 0,
      unexpected_rate: counted ? count('unexpected') / counted : 0,
    };
  }

  /** Whether the engine that served the request (any engine, if unknown) was killed while it ran. */
  private killedDuring(backend: string | undefined, start: number, end: number): boolean {
    return this.kills.some((k) => (backend === undefined || k.backend === backend) && k.at >= start - 50 && k.at <= end + 50);
  }

  private async one(): Promise<RequestRecord> {
    const { rand, opts } = this;
    const start = Date.now();
    const stream = rand() < 0.5;
    const model = opts.models[Math.floor(rand() * opts.models.length)]!;
    const injectError = rand() < opts.errorRate;
    const injectDrop = stream && !injectError && rand() < opts.dropRate;
    const abort = rand() < opts.abortRate;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (injectError) headers['x-mock-error'] = '500';
    if (injectDrop) headers['x-mock-drop-after'] = '3';
    const controller = new AbortController();
    if (abort) setTimeout(() => controller.abort(), Math.floor(rand() * (opts.abortWithinMs ?? 400))).unref();
    const body = JSON.stringify({ model, stream, max_tokens: opts.maxTokens ?? 24, messages: [{ role: 'user', content: `traffic ${start} ${rand()}` }] });
    let backend: string | undefined;
    const done = (outcome: Outcome, detail?: string): RequestRecord => ({ start, end: Date.now(), stream, outcome, detail, backend });
    let text = '';
    try {
      const res = await fetch(`${opts.routerUrl}/v1/chat/completions`, { method: 'POST', body, headers, signal: controller.signal });
      // read as it arrives, so the engine's name is known even if the stream is cut later
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        backend ??= /"system_fingerprint":"([^"]+)"/.exec(text)?.[1];
      }
      if (res.status === 500 && injectError && text.includes('injected_fault')) return done('injected-error');
      if (res.status !== 200) return done('unexpected', `status ${res.status}: ${text.slice(0, 300)}`);
      if (!stream || text.includes('data: [DONE]')) return done('ok');
      if (injectDrop) return done('injected-drop');
      if (this.killedDuring(backend, start, Date.now())) return done('killed');
      return done('unexpected', 'stream ended without [DONE]');
    } catch (err) {
      if (controller.signal.aborted) return done('aborted');
      if (injectDrop) return done('injected-drop');
      if (stream && this.killedDuring(backend, start, Date.now())) return done('killed');
      const cause = (err as { cause?: Error }).cause;
      return done('unexpected', `${(err as Error).message}${cause ? `: ${cause.message}` : ''}`);
    }
  }
}
