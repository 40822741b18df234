import { randomBytes } from 'node:crypto';
import { SlotList } from '../common/slot-list.js';
import type { Http1Response } from '../common/http1/response.js';
import type { Http1Request } from '../common/http1/server.js';
import type { Logger } from '../common/log.js';
import type { Backend } from './backend.js';
import type { BackendSet } from './backend-set.js';
import { routerError, type RouterError, type RouterErrors } from './errors.js';
import { downstreamResponseHeaders, upstreamHeaderLines } from './headers.js';
import type { RequestInfo } from './request-info.js';
import type { UpstreamConnection, UpstreamHandler } from './upstream/connection.js';
import type { ResponseHead } from './upstream/response-parser.js';

export interface ForwarderOptions {
  maxErrors: number;
  /** Attempts per request in all (the first plus retries). */
  maxAttempts: number;
  /** Total time from dispatch to the end of the body (PROXY_TIMEOUT_SECONDS). */
  totalTimeoutMs: number;
  errors: RouterErrors;
  log: Logger;
}

/** Request ids: a random per-process prefix and a counter (unique, and far cheaper than a UUID each). */
const ID_PREFIX = randomBytes(6).toString('hex');
let idCounter = 0;
function nextRequestId(): string {
  return `${ID_PREFIX}-${(++idCounter).toString(36)}`;
}

/** Why an attempt failed: the original's three categories, and a backend declared dead meanwhile. */
type FailureKind = 'connect' | 'timeout' | 'other' | 'down';

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UPSTREAM_CONNECT_TIMEOUT', 'EADDRNOTAVAIL']);
const TIMEOUT_CODES = new Set(['UPSTREAM_HEADERS_TIMEOUT', 'UPSTREAM_BODY_TIMEOUT', 'ROUTER_TOTAL_TIMEOUT']);

function classify(err: Error): FailureKind {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (CONNECT_CODES.has(code)) return 'connect';
  if (TIMEOUT_CODES.has(code)) return 'timeout';
  if (code === BACKEND_DOWN) return 'down';
  return 'other';
}

/** The answer when no attempt is left; a dead backend with no other to retry on is "try again soon". */
const FAILURE_ERRORS: Record<FailureKind, (model: string | undefined) => RouterError> = {
  connect: routerError.upstreamUnavailable,
  timeout: routerError.upstreamTimeout,
  other: routerError.upstreamFailed,
  down: routerError.noHealthyBackend,
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

/** Per-request state shared by its attempts. */
interface Exchange {
  req: Http1Request;
  res: Http1Response;
  info: RequestInfo;
  /** Header lines for the upstream, built once for all attempts. */
  headerLines: string;
  requestId: string;
  attempts: number;
  tried: Set<Backend> | undefined;
  clientGone: boolean;
  /** Set while an upstream attempt is running. */
  current: Attempt | undefined;
}

/**
 * Forwards requests: picks a backend with the set's policy, sends the original bytes over the backend's
 * keep-alive pool and relays the answer chunk by chunk. An attempt that could not connect, or whose
 * connection failed before any response byte, is retried on another backend; never once the
 * response has started, and never after a timeout (generation requests are not idempotent).
 */
export class RequestForwarder {
  /** Attempts in flight, swept for the total timeout (one timer for all instead of one each). */
  private readonly active = new SlotList<Attempt>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly backends: BackendSet,
    readonly opts: ForwarderOptions,
  ) {
    const every = Math.max(50, Math.min(1000, opts.totalTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
    backends.onDown((b, reason) => this.backendDown(b, reason));
  }

  get inFlight(): number {
    return this.active.length;
  }

  handle(req: Http1Request, res: Http1Response, info: RequestInfo): void {
    const incomingId = req.headers['x-request-id'];
    const requestId = typeof incomingId === 'string' && incomingId !== '' ? incomingId : nextRequestId();
    const ex: Exchange = {
      req,
      res,
      info,
      headerLines: upstreamHeaderLines(req, requestId, req.body?.length ?? 0),
      requestId,
      attempts: 0,
      tried: undefined,
      clientGone: false,
      current: undefined,
    };
    // a client gone early aborts the upstream
    res.onClose = () => {
      ex.clientGone = true;
      ex.current?.abort();
    };
    this.attempt(ex, undefined);
  }

  /** Starts the next attempt, or answers with the last failure / "no healthy services". */
  private attempt(ex: Exchange, lastFailure: FailureKind | undefined): void {
    if (ex.clientGone) return;
    const now = Date.now();
    const backend = ex.attempts < this.opts.maxAttempts ? this.backends.pick(ex.info, now, ex.tried) : undefined;
    if (!backend) {
      if (lastFailure !== undefined) return this.fail(ex.res, FAILURE_ERRORS[lastFailure](ex.info.model));
      const model = ex.info.model;
      // no backend lists the model, nor did lately: it does not exist here (404); else none is routable now (503)
      if (model !== undefined && this.backends.presence(model, now) === 'unknown') return this.fail(ex.res, routerError.modelNotFound(model));
      return this.fail(ex.res, routerError.noHealthyBackend(model));
    }
    ex.attempts++;
    backend.requestCount++;
    backend.inFlight++;
    const attempt = new Attempt(this, ex, backend);
    ex.current = attempt;
    this.active.add(attempt);
    const method = ex.req.method;
    const head = `${method} ${backend.basePath}${ex.req.url} HTTP/1.1\r\nhost: ${backend.hostHeader}\r\n${ex.headerLines}\r\n`;
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
    if (retry) {
      (ex.tried ??= new Set()).add(backend);
      this.opts.log.debug({ backend: backend.name, failure, attempt: ex.attempts }, 'retrying on another backend');
      this.attempt(ex, failure);
      return;
    }
    // a head stored but not written yet (the body failed in the same read) can still become a 502
    if (!ex.res.headersSent || ex.res.retractHead()) {
      this.fail(ex.res, FAILURE_ERRORS[failure](ex.info.model));
    } else {
      // The answer had started: cut the client off so it sees an incomplete body, never a clean end.
      ex.res.destroy();
    }
  }

  fail(res: Http1Response, err: RouterError): void {
    this.opts.errors.send(res, err);
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
    if (status === 502 || status === 503) this.forwarder.recordFailure(backend);
    else backend.recordSuccess();
    if (ex.clientGone) return this.abort();
    const headers = downstreamResponseHeaders(head.headers, ex.req.headers['x-request-id'] === undefined ? ex.requestId : undefined, head.framing !== 'chunked' && head.framing !== 'close');
    const res = ex.res;
    // The backend's chunk framing goes out as it is to a client that speaks chunked.
    const passFraming = head.framing === 'chunked' && ex.req.httpVersionMinor === 1;
    if (passFraming) headers.push('transfer-encoding', 'chunked');
    res.writeHead(status, headers, passFraming);
    if (passFraming) conn.rawChunked = true;
  }

  onData(data: Buffer, start: number, end: number): boolean {
    // the data lives in the connection's read buffer: writeFrom copies it
    const res = this.ex.res;
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
    this.ex.res.end();
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
    // A malformed answer is an answer: the backend may have run the request, so it is not retried.
    const malformed = (err as NodeJS.ErrnoException).code === 'UPSTREAM_PROTOCOL';
    if (malformed) this.forwarder.opts.log.warn({ backend: this.backend.name, err: err.message }, 'backend sent a malformed response');
    // Retry only when nothing of the answer arrived and the failure was not a timeout.
    const retry = !this.responded && kind !== 'timeout' && !malformed;
    this.forwarder.finished(this, kind, retry);
  }
}
