// the global `performance` is a lazy accessor on globalThis; the module's own binding skips it on the request path
import { performance } from 'node:perf_hooks';
import { SlotList } from '../common/slot-list.js';
import type { Http1Response } from '../common/http1/response.js';
import type { Http1Request } from '../common/http1/server.js';
import type { Logger } from '../common/log.js';
import { Admission, QUEUE_DEFAULTS, type AdmissionOptions } from './admission.js';
import type { Backend } from './backend.js';
import type { BackendSet } from './backend-set.js';
import { routerError, type RouterError, type RouterErrors } from './errors.js';
import { downstreamResponseHeaders, upstreamHeaderLines } from './headers.js';
import { nextRequestNumber, requestIdOf } from './request-id.js';
import type { RequestInfo } from './request-info.js';
import { ADDRESS_REFUSED } from './upstream/address-policy.js';
import type { UpstreamConnection, UpstreamHandler } from './upstream/connection.js';
import type { ResponseHead } from './upstream/response-parser.js';
import type { EndReason, RequestLog, RequestRecord } from './request-log.js';
import { FAILURE_KINDS, NO_MODEL, routeIndex, ROUTES, type FailureLabel, type TrafficCell } from './traffic-stats.js';
import { USAGE_TAIL_BYTES, completionTokens } from './usage-scan.js';
import type { Waiter } from './wait-queue.js';

export interface ForwarderOptions {
  maxErrors: number;
  /** Attempts per request in all (the first plus retries). */
  maxAttempts: number;
  /** Total time from dispatch to the end of the body (PROXY_TIMEOUT_SECONDS). */
  totalTimeoutMs: number;
  errors: RouterErrors;
  log: Logger;
  /** One line per finished request, when enabled (--request-log). */
  requestLog?: RequestLog;
  /** Told of every request that did not end well (an error status, or not completed): the dashboard's recent errors. */
  onFailedRequest?: (r: RequestRecord) => void;
  /** Request headers never forwarded (the client's API key, when keys are configured). */
  stripHeaders?: ReadonlySet<string>;
  /** A backend's own credential, as a header line (or ''), when keys are configured. */
  backendLine?: (backend: Backend) => string;
  /** The wait queue for models whose backends are all at their limit (--queue-size, ...). */
  queue?: AdmissionOptions;
}


/**
 * Why an attempt failed: the original's three categories, a backend declared dead meanwhile, and
 * an address the router's guard refuses (never connected to).
 */
type FailureKind = 'connect' | 'timeout' | 'other' | 'down' | 'refused';

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UPSTREAM_CONNECT_TIMEOUT', 'EADDRNOTAVAIL']);
const TIMEOUT_CODES = new Set(['UPSTREAM_HEADERS_TIMEOUT', 'UPSTREAM_BODY_TIMEOUT', 'ROUTER_TOTAL_TIMEOUT']);

function classify(err: Error): FailureKind {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (CONNECT_CODES.has(code)) return 'connect';
  if (TIMEOUT_CODES.has(code)) return 'timeout';
  if (code === BACKEND_DOWN) return 'down';
  if (code === ADDRESS_REFUSED) return 'refused';
  return 'other';
}

/** The answer when no attempt is left; a dead backend with no other to retry on is "try again soon". */
const FAILURE_ERRORS: Record<FailureKind, (model: string | undefined) => RouterError> = {
  connect: routerError.upstreamUnavailable,
  timeout: routerError.upstreamTimeout,
  other: routerError.upstreamFailed,
  down: routerError.noHealthyBackend,
  refused: routerError.addressRefused,
};

const BACKEND_DOWN = 'ROUTER_BACKEND_DOWN';

class TotalTimeoutError extends Error {
  readonly code = 'ROUTER_TOTAL_TIMEOUT';
  constructor() {
    super('total proxy timeout exceeded');
  }
}

/** The backend was declared dead while the attempt waited for its answer: retried elsewhere. */
class BackendDownError extends Error {
  readonly code = BACKEND_DOWN;
  constructor(reason: string) {
    super(`backend declared down: ${reason}`);
  }
}

const FAILURE_LABEL: Record<FailureKind, FailureLabel> = { connect: 'connect', timeout: 'timeout', down: 'down', other: 'reset', refused: 'address_refused' };
const FAILURE_INDEX = (label: FailureLabel) => FAILURE_KINDS.indexOf(label);
const MALFORMED = FAILURE_INDEX('malformed');
const STATUS_502 = FAILURE_INDEX('status_502');
const STATUS_503 = FAILURE_INDEX('status_503');
/** Embeddings report usage without completion tokens: their answers are not searched. */
const EMBEDDINGS = ROUTES.indexOf('/v1/embeddings');

/** Per-request state shared by its attempts. */
interface Exchange {
  req: Http1Request;
  res: Http1Response;
  info: RequestInfo;
  /** Header lines for the upstream, built once for all attempts. */
  headerLines: string;
  requestId: string;
  /** The counter in a request id the router made; 0 for the client's own id. */
  requestNumber: number;
  attempts: number;
  tried: Set<Backend> | undefined;
  clientGone: boolean;
  /** Set while an upstream attempt is running. */
  current: Attempt | undefined;
  /** What is measured for metrics and the request log (times from performance.now()). */
  startedAt: number;
  firstByteAt: number;
  lastDataAt: number;
  /** Status the client got (0 while none). */
  status: number;
  bytesOut: number;
  /** usage.completion_tokens of the answer, -1 while unknown. */
  outputTokens: number;
  /** The backend of the last attempt. */
  backend: Backend | undefined;
  route: number;
  ended: boolean;
  /** Its place in the wait queue while it waits for a backend with room. */
  waiter: Waiter<Exchange> | undefined;
  /** Milliseconds it waited there, -1 if it never did. */
  queuedMs: number;
}

/**
 * Forwards requests: picks a backend with the set's policy, sends the original bytes over the backend's
 * keep-alive pool and relays the answer chunk by chunk. An attempt that could not connect, or whose
 * connection failed before any response byte, is retried on another backend; never once the
 * response has started, and never after a timeout (generation requests are not idempotent).
 */
export class RequestForwarder {
  /** The finished request handed to the request log and the recent errors (refilled each time). */
  private readonly record: RequestRecord = {
    requestId: '',
    requestNumber: 0,
    model: undefined,
    backend: undefined,
    status: 0,
    attempts: 0,
    bytesIn: 0,
    bytesOut: 0,
    ttftMs: undefined,
    durationMs: 0,
    endedAt: 0,
    queuedMs: undefined,
    outputTokens: undefined,
    stream: false,
    client: '',
    end: 'completed',
  };
  /** Attempts in flight, swept for the total timeout (one timer for all instead of one each). */
  private readonly active = new SlotList<Attempt>();
  private readonly sweeper: NodeJS.Timeout;
  /** Requests waiting for a backend with room when every candidate is at its limit. */
  readonly admission: Admission<Exchange>;

  constructor(
    private readonly backends: BackendSet,
    readonly opts: ForwarderOptions,
  ) {
    const every = Math.max(50, Math.min(1000, opts.totalTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
    backends.onDown((b, reason) => this.backendDown(b, reason));
    this.admission = new Admission<Exchange>(
      backends,
      {
        dispatch: (ex, backend) => this.send(ex, backend),
        refuse: (ex, err, reason) => {
          ex.backend = undefined;
          this.failExchange(ex, err, reason);
        },
      },
      opts.queue ?? QUEUE_DEFAULTS,
    );
  }

  get inFlight(): number {
    return this.active.length;
  }

  handle(req: Http1Request, res: Http1Response, info: RequestInfo): void {
    const ex = this.exchange(req, res, info, true);
    // a client gone early aborts the upstream, or leaves the wait queue
    res.onClose = () => {
      ex.clientGone = true;
      if (ex.waiter !== undefined) this.admission.leave(ex);
      ex.current?.abort();
      this.end(ex, 'client_gone');
    };
    this.attempt(ex, undefined);
  }

  /**
   * A request the key gate answers itself (401, 400, 404, 429): sent `err` with the request id, and
   * counted and logged like any other (end `refused`), so an operator finds it by its id.
   */
  refuse(req: Http1Request, res: Http1Response, info: RequestInfo, err: RouterError, headers: Record<string, string> = {}): void {
    this.failExchange(this.exchange(req, res, info, false), err, 'refused', headers);
  }

  /** A request's state; `forwarded`: it may go upstream, so the header lines it will carry are built. */
  private exchange(req: Http1Request, res: Http1Response, info: RequestInfo, forwarded: boolean): Exchange {
    const incomingId = req.headers['x-request-id'];
    const own = typeof incomingId !== 'string' || incomingId === '';
    const requestNumber = own ? nextRequestNumber() : 0;
    const requestId = own ? requestIdOf(requestNumber) : incomingId;
    return {
      req,
      res,
      info,
      headerLines: forwarded ? upstreamHeaderLines(req, requestId, req.body?.length ?? 0, this.opts.stripHeaders) : '',
      requestId,
      requestNumber,
      attempts: 0,
      tried: undefined,
      clientGone: false,
      current: undefined,
      startedAt: performance.now(),
      firstByteAt: 0,
      lastDataAt: 0,
      status: 0,
      bytesOut: 0,
      outputTokens: -1,
      backend: undefined,
      route: routeIndex(req.url),
      ended: false,
      waiter: undefined,
      queuedMs: -1,
    };
  }

  /** Starts the next attempt, or answers with the last failure / "no healthy services". */
  private attempt(ex: Exchange, lastFailure: FailureKind | undefined): void {
    if (ex.clientGone) return;
    const now = Date.now();
    const backend = ex.attempts < this.opts.maxAttempts ? this.backends.pick(ex.info, now, ex.tried) : undefined;
    if (!backend) {
      // every candidate is at its limit: the request waits for room (or the queue refuses it)
      if (ex.attempts < this.opts.maxAttempts && this.admission.admit(ex, ex.req.body?.length ?? 0)) return;
      if (lastFailure !== undefined) return this.failExchange(ex, FAILURE_ERRORS[lastFailure](ex.info.model), lastFailure === 'timeout' ? 'timeout' : 'upstream_error');
      const model = ex.info.model;
      ex.backend = undefined;
      // no backend lists the model, nor did lately: it does not exist here (404); else none is routable now (503)
      if (model !== undefined && this.backends.presence(model, now) === 'unknown') return this.failExchange(ex, routerError.modelNotFound(model), 'no_backend');
      return this.failExchange(ex, routerError.noHealthyBackend(model), 'no_backend');
    }
    this.send(ex, backend);
  }

  /** Sends an attempt of the request to the chosen backend. */
  private send(ex: Exchange, backend: Backend): void {
    ex.attempts++;
    ex.backend = backend;
    backend.requestCount++;
    backend.inFlight++;
    const attempt = new Attempt(this, ex, backend);
    ex.current = attempt;
    this.active.add(attempt);
    const method = ex.req.method;
    const auth = this.opts.backendLine === undefined ? '' : this.opts.backendLine(backend);
    const head = `${method} ${backend.basePath}${ex.req.url} HTTP/1.1\r\nhost: ${backend.hostHeader}\r\n${auth}${ex.headerLines}\r\n`;
    attempt.conn = backend.pool.request(head, ex.req.body, method === 'HEAD', attempt);
  }

  /** Called once per attempt when it ends, however it ended. */
  finished(attempt: Attempt, failure: FailureKind | undefined, retry: boolean): void {
    this.active.remove(attempt);
    const { ex, backend } = attempt;
    backend.inFlight--;
    if (ex.current === attempt) ex.current = undefined;
    if (failure === undefined || ex.clientGone) return;
    // a backend already declared dead is not judged again by this attempt
    if (failure !== 'down') this.recordFailure(backend);
    if (!attempt.malformed) backend.traffic.failures[FAILURE_INDEX(FAILURE_LABEL[failure])]!++;
    if (retry) {
      backend.traffic.retries++;
      (ex.tried ??= new Set()).add(backend);
      this.opts.log.debug({ backend: backend.name, failure, attempt: ex.attempts }, 'retrying on another backend');
      this.attempt(ex, failure);
      return;
    }
    const reason: EndReason = failure === 'timeout' ? 'timeout' : 'upstream_error';
    // a head stored but not written yet (the body failed in the same read) can still become a 502
    if (!ex.res.headersSent || ex.res.retractHead()) {
      this.failExchange(ex, FAILURE_ERRORS[failure](ex.info.model), reason);
    } else {
      // The answer had started: cut the client off so it sees an incomplete body, never a clean end.
      this.end(ex, reason);
      ex.res.destroy();
    }
  }

  /** Answers with the router's own error and ends the exchange. */
  private failExchange(ex: Exchange, err: RouterError, reason: EndReason, headers: Record<string, string> = {}): void {
    // the id the request log and the dashboard know it by, as on proxied answers
    ex.status = this.opts.errors.send(ex.res, err, ex.req.headers['x-request-id'] === undefined ? { ...headers, 'x-request-id': ex.requestId } : headers);
    this.end(ex, reason);
  }

  /**
   * Counts a finished request once, however it ended: its backend's (or the router's) cell for its
   * model, the request log, the recent errors.
   */
  end(ex: Exchange, reason: EndReason): void {
    if (ex.ended) return;
    ex.ended = true;
    // a completed answer ends at its last byte (read moments ago); other ends are timed now
    const now = reason === 'completed' && ex.lastDataAt > 0 ? ex.lastDataAt : performance.now();
    const ms = now - ex.startedAt;
    const backend = ex.backend;
    const model = ex.info.model;
    const cell = (backend === undefined ? this.backends.traffic.unrouted : backend.traffic).cell(model ?? NO_MODEL);
    const status = reason === 'client_gone' && !ex.res.headersSent ? 0 : ex.status;
    cell.countRequest(ex.route, status);
    cell.duration.observe(ms / 1000);
    const ttftMs = ex.firstByteAt > 0 ? ex.firstByteAt - ex.startedAt : undefined;
    if (ttftMs !== undefined && backend !== undefined) (ex.info.stream ? cell.ttft : cell.ttftWhole).observe(ttftMs / 1000);
    const tokens = ex.outputTokens;
    // a keyed request gives back what it reserved of its key's limits
    const grant = ex.info.grant;
    if (grant !== undefined) grant.settle(status, tokens);
    if (tokens > 0) {
      cell.outputTokens += tokens;
      // a stream's decode speed (tokens after the first, over the time after it); a whole answer's tokens over its duration
      const decodeMs = ex.lastDataAt - ex.firstByteAt;
      if (ex.info.stream && tokens > 1 && ex.firstByteAt > 0 && decodeMs > 0) cell.tokenRate.observe(((tokens - 1) * 1000) / decodeMs);
      else if (ms > 0) cell.tokenRate.observe((tokens * 1000) / ms);
    }
    const log = this.opts.requestLog;
    // a key refused is the client's business, not the cluster's: not among the dashboard's errors
    const failed = status >= 500 || (reason !== 'completed' && reason !== 'refused');
    if (log === undefined && !(failed && this.opts.onFailedRequest)) return;
    // one record object, refilled: the log encodes it at once and the recent errors copy what they keep
    const record = this.record;
    record.requestId = ex.requestId;
    record.requestNumber = ex.requestNumber;
    record.model = model;
    record.backend = backend?.name;
    record.status = status;
    record.attempts = ex.attempts;
    record.bytesIn = ex.req.body?.length ?? 0;
    record.bytesOut = ex.bytesOut;
    record.ttftMs = ttftMs;
    record.durationMs = ms;
    record.endedAt = now;
    record.queuedMs = ex.queuedMs >= 0 ? ex.queuedMs : undefined;
    record.outputTokens = tokens >= 0 ? tokens : undefined;
    record.stream = ex.info.stream;
    record.client = ex.req.remoteAddress;
    record.end = reason;
    log?.write(record);
    if (failed) this.opts.onFailedRequest?.(record);
  }

  /** A refused address stays refused: this failure ejects the backend at once (its health checks then fail too). */
  addressRefused(backend: Backend, why: string): void {
    backend.consecutiveFailures = Math.max(backend.consecutiveFailures, this.opts.maxErrors - 1);
    this.opts.log.warn({ backend: backend.name, url: backend.url, reason: why }, 'backend address refused by the network policy');
  }

  /** Counts a failed attempt; enough consecutive ones eject the backend for a while. */
  recordFailure(backend: Backend): void {
    if (backend.recordFailure(this.opts.maxErrors, Date.now())) {
      this.opts.log.warn({ backend: backend.name, until: new Date(backend.ejectedUntil).toISOString() }, 'backend ejected after consecutive failures');
    }
  }

  /**
   * A backend was declared dead (deregistered, gone from the registry, or no answer to the health
   * check): its attempts that have received no response byte are retried elsewhere at once rather
   * than waiting for a timeout (the engine is restarted, so their work is lost anyway). Answers
   * already streaming go on for as long as the connection does.
   */
  backendDown(backend: Backend, reason: string): void {
    let moved = 0;
    this.active.forEachBackwards((a) => {
      if (a.backend !== backend || a.hasResponded) return;
      moved++;
      a.abort(new BackendDownError(reason));
    });
    if (moved > 0) this.opts.log.warn({ backend: backend.name, reason, requests: moved }, 'backend down: retrying its waiting requests elsewhere');
  }

  private sweep(): void {
    const limit = Date.now() - this.opts.totalTimeoutMs;
    this.active.forEachBackwards((a) => {
      if (a.startedAt < limit) a.abort(new TotalTimeoutError());
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    this.admission.close();
  }
}

/**
 * One upstream attempt, as the handler of a request on a backend connection. A chunked answer to a
 * client that speaks chunked itself is relayed with its framing untouched: every socket read from
 * the backend becomes one write to the client (each SSE event as soon as the backend wrote it, no
 * re-encoding). Backpressure: when the client's socket is full, reading from the backend stops
 * until the client drains.
 */
class Attempt implements UpstreamHandler {
  readonly startedAt = Date.now();
  /** Index in the forwarder's list of active attempts. */
  slot = -1;
  conn: UpstreamConnection | undefined;
  private responded = false;
  private done = false;
  /** The attempt failed on a malformed answer (counted as such, not by its error class). */
  malformed = false;
  /** The backend's cell for the request's model, found at the first stream event that needs it. */
  private cell: TrafficCell | undefined;
  private blocked = false;

  constructor(
    private readonly forwarder: RequestForwarder,
    readonly ex: Exchange,
    readonly backend: Backend,
  ) {}

  abort(err?: Error): void {
    if (!this.done) this.conn?.abort(this, err);
  }

  /** Whether any of the answer arrived (then it can no longer be retried). */
  get hasResponded(): boolean {
    return this.responded;
  }

  onHeaders(head: ResponseHead, conn: UpstreamConnection): void {
    const { ex, backend } = this;
    const status = head.status;
    this.responded = true;
    backend.lastResponseMs = Date.now() - this.startedAt;
    if (status === 502 || status === 503) {
      this.forwarder.recordFailure(backend);
      backend.traffic.failures[status === 502 ? STATUS_502 : STATUS_503]!++;
    } else backend.recordSuccess();
    if (ex.clientGone) return this.abort();
    const headers = downstreamResponseHeaders(head.headers, head.names, ex.req.headers['x-request-id'] === undefined ? ex.requestId : undefined, head.framing !== 'chunked' && head.framing !== 'close');
    const res = ex.res;
    // The backend's chunk framing goes out as it is to a client that speaks chunked.
    const passFraming = head.framing === 'chunked' && ex.req.httpVersionMinor === 1;
    if (passFraming) headers.push('transfer-encoding', 'chunked');
    if (ex.info.grant !== undefined) ex.info.grant.headers(headers);
    // names and values passed the response parser (and the client's id the request parser): checked
    res.writeHead(status, headers, passFraming, true);
    ex.status = status;
    if (passFraming) conn.rawChunked = true;
  }

  onData(data: Buffer, start: number, end: number): boolean {
    const ex = this.ex;
    // the first answer byte leaves with the held head: time to first token as the client sees it
    const now = performance.now();
    if (ex.firstByteAt === 0) ex.firstByteAt = now;
    else if (ex.info.stream) (this.cell ??= this.backend.traffic.cell(ex.info.model ?? NO_MODEL)).itl.observe((now - ex.lastDataAt) / 1000);
    ex.lastDataAt = now;
    ex.bytesOut += end - start;
    // usage is looked for only where it can be: whole answers of chat and completions, streams that asked for it
    if (ex.info.stream ? ex.info.streamUsage === true : ex.route !== EMBEDDINGS) {
      const tokens = completionTokens(data, Math.max(start, end - USAGE_TAIL_BYTES), end);
      if (tokens >= 0) ex.outputTokens = tokens;
    }
    const grant = ex.info.grant;
    if (grant !== undefined && grant.scansUsage) grant.scan(data, start, end);
    // the data lives in the connection's read buffer: writeFrom copies it
    const res = ex.res;
    if (!res.writeFrom(data, start, end) && !this.blocked) {
      this.blocked = true;
      res.onDrain(() => {
        this.blocked = false;
        this.conn?.resume(this);
      });
    }
    return !this.blocked;
  }

  onComplete(): void {
    this.done = true;
    const ex = this.ex;
    if (ex.firstByteAt === 0) ex.firstByteAt = ex.lastDataAt = performance.now();
    ex.res.end();
    this.forwarder.end(ex, 'completed');
    this.forwarder.finished(this, undefined, false);
  }

  onError(err: Error): void {
    if (this.done) return;
    this.done = true;
    if (this.ex.clientGone) {
      this.forwarder.finished(this, undefined, false);
      return;
    }
    const kind = classify(err);
    if (kind === 'refused') this.forwarder.addressRefused(this.backend, err.message);
    // A malformed answer is an answer: the backend may have run the request, so it is not retried.
    const malformed = (err as NodeJS.ErrnoException).code === 'UPSTREAM_PROTOCOL';
    if (malformed) {
      this.malformed = true;
      this.backend.traffic.failures[MALFORMED]!++;
      this.forwarder.opts.log.warn({ backend: this.backend.name, err: err.message }, 'backend sent a malformed response');
    }
    // Retry only when nothing of the answer arrived and the failure was not a timeout.
    const retry = !this.responded && kind !== 'timeout' && !malformed;
    this.forwarder.finished(this, kind, retry);
  }
}
