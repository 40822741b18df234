import { sendError, type JsonResponder } from '../common/http-json.js';
import { errorType, protocolErrorBody, sendOpenAIError } from '../common/openai-error.js';

/**
 * How the router words the errors it produces itself: `openai` (OpenAI's shape, so the official
 * SDKs raise the right exception, e.g. NotFoundError for an unknown model) or `original` (the
 * original router's exact statuses and `{"error": "<string>"}` bodies, for drop-in deployments).
 */
export const ERROR_FORMATS = ['openai', 'original'] as const;
export type ErrorFormat = (typeof ERROR_FORMATS)[number];

/** Seconds a client is told to wait when a model's backends exist but none is routable right now. */
export const NO_BACKEND_RETRY_AFTER_S = 5;

/** One error the router answers by itself. */
export interface RouterError {
  status: number;
  message: string;
  /** OpenAI `code`; null where OpenAI has none. */
  code: string | null;
  param?: string | null;
  /** The original's status where it differs (an unknown model was 503 there). */
  originalStatus?: number;
  /** Sent as Retry-After (openai format only: the original sent none)... */
  retryAfterS?: number;
  /** OpenAI `type` where it is not the status's usual one (rate limits: `requests`, `tokens`). */
  type?: string;
  /** ...unless the error is new here, with no original wording to keep (the wait queue's). */
  retryAfterAlways?: boolean;
}

/** Seconds a client refused by a full wait queue, or one that waited out --queue-timeout, is told to wait. */
export const QUEUE_RETRY_AFTER_S = 5;

/** Builders of the router's errors; messages keep the original's text. */
export const routerError = {
  /** No backend lists the model at all: the client asked for something that does not exist. */
  modelNotFound: (model: string): RouterError => ({
    status: 404,
    originalStatus: 503,
    message: `No healthy services available for model '${model}'`,
    code: 'model_not_found',
    param: 'model',
  }),
  /** Backends exist (for the model, or at all) but none is routable now: try again shortly. */
  noHealthyBackend: (model: string | undefined): RouterError => ({
    status: 503,
    message: model !== undefined ? `No healthy services available for model '${model}'` : 'No healthy services available',
    code: 'no_healthy_backend',
    retryAfterS: NO_BACKEND_RETRY_AFTER_S,
  }),
  upstreamUnavailable: (): RouterError => ({ status: 503, message: 'Service unavailable - connection refused', code: 'upstream_unavailable' }),
  upstreamTimeout: (): RouterError => ({ status: 504, message: 'Service timeout', code: 'upstream_timeout' }),
  /** The backend's address is one the router may not connect to (--allow-networks / --deny-networks, built-in rules). */
  addressRefused: (): RouterError => ({ status: 502, message: "Bad gateway - the backend's address is refused by the router's network policy (see the router's log)", code: 'upstream_address_refused' }),
  upstreamFailed: (): RouterError => ({ status: 502, message: 'Bad gateway - error communicating with service', code: 'upstream_error' }),
  /** Every backend of the model is at its limit and the model's wait queue (or the queues' bytes) is full. */
  queueFull: (model: string | undefined, why: string): RouterError => ({
    status: 503,
    message: `${model !== undefined ? `Every backend of model '${model}'` : 'Every backend'} is at its concurrency limit and the wait queue is full (${why})`,
    code: 'queue_full',
    retryAfterS: QUEUE_RETRY_AFTER_S,
    retryAfterAlways: true,
  }),
  /** The request waited --queue-timeout for a backend of its model to have room. */
  queueTimeout: (model: string | undefined, seconds: number): RouterError => ({
    status: 503,
    message: `No backend${model !== undefined ? ` of model '${model}'` : ''} had room within the queue timeout (${seconds} s)`,
    code: 'queue_timeout',
    retryAfterS: QUEUE_RETRY_AFTER_S,
    retryAfterAlways: true,
  }),
  methodNotAllowed: (method: string, path: string): RouterError => ({ status: 405, message: `method ${method} not allowed on ${path}`, code: 'method_not_allowed' }),
  metricsUnavailable: (why: string): RouterError => ({ status: 503, message: `metrics unavailable: ${why}`, code: 'metrics_unavailable' }),
};

/** Writes the router's own errors in the configured format and counts them by status (metrics). */
export class RouterErrors {
  /** Error answers produced by the router itself, by status sent. */
  readonly counts = new Map<number, number>();

  constructor(readonly format: ErrorFormat) {}

  /** Sends `err`; returns the status sent. */
  send(res: JsonResponder, err: RouterError, headers: Record<string, string> = {}): number {
    if (this.format === 'original') {
      const status = err.originalStatus ?? err.status;
      this.count(status);
      sendError(res, status, err.message, err.retryAfterAlways ? { ...headers, 'retry-after': String(err.retryAfterS) } : headers);
      return status;
    }
    this.count(err.status);
    const retry: Record<string, string> = err.retryAfterS !== undefined ? { 'retry-after': String(err.retryAfterS) } : {};
    sendOpenAIError(res, { status: err.status, message: err.message, type: err.type ?? errorType(err.status), code: err.code, param: err.param ?? null }, { ...headers, ...retry });
    return err.status;
  }

  count(status: number): void {
    this.counts.set(status, (this.counts.get(status) ?? 0) + 1);
  }

  /** Body of the HTTP server's protocol errors (400 malformed, 413, 431, ...). */
  readonly protocolBody = (status: number, message: string): string =>
    this.format === 'openai' ? protocolErrorBody(status, message) : JSON.stringify({ error: message });
}
