/** The answers of the key check and the limits, in OpenAI's words where OpenAI has them. */
import type { RouterError } from '../errors.js';
import { formatReset, type Verdict } from './rate-limits.js';

export const accessError = {
  missingKey: (): RouterError => ({
    status: 401,
    message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the x-api-key header.",
    code: 'invalid_api_key',
  }),
  /** The key is never repeated: answers end up in logs and screenshots. */
  unknownKey: (): RouterError => ({ status: 401, message: 'Incorrect API key provided. Ask the operator of this router for a valid key.', code: 'invalid_api_key' }),
  /** A client key on an admin endpoint. */
  notAdmin: (name: string, path: string): RouterError => ({ status: 403, message: `${path} needs an admin key; key '${name}' has client scope`, code: 'insufficient_permissions' }),
  /**
   * A model the key may not use: 404 as OpenAI answers it, worded as for a model that does not
   * exist, so a key learns nothing about the models it cannot see (its /v1/models omits them too).
   */
  modelNotAllowed: (model: string): RouterError => ({
    status: 404,
    message: `The model \`${model}\` does not exist or you do not have access to it.`,
    code: 'model_not_found',
    param: 'model',
  }),
  modelRequired: (name: string): RouterError => ({
    status: 400,
    message: `you must provide a model parameter: key '${name}' may use only some models`,
    code: 'model_required',
    param: 'model',
  }),
  /** 429 for a limit; 503 when the shared limiter (the primary of --workers) does not answer. */
  limited: (name: string, v: Verdict): RouterError => {
    const retryS = v.retryAfterMs > 0 ? Math.max(1, Math.ceil(v.retryAfterMs / 1000)) : undefined;
    const again = v.retryAfterMs > 0 ? ` Please try again in ${formatReset(v.retryAfterMs)}.` : '';
    const withRetry = (e: RouterError): RouterError => (retryS !== undefined ? { ...e, retryAfterS: retryS } : e);
    switch (v.refusal) {
      case 'requests': {
        const r = v.requests!;
        return withRetry({ status: 429, type: 'requests', code: 'rate_limit_exceeded', message: `Rate limit reached for key '${name}' on requests per min (RPM): Limit ${r.limit}, Used ${r.limit - r.remaining}, Requested 1.${again}` });
      }
      case 'tokens':
      case 'too_large': {
        const t = v.tokens!;
        const head = v.refusal === 'too_large' ? `Request too large for key '${name}' on tokens per min (TPM)` : `Rate limit reached for key '${name}' on tokens per min (TPM)`;
        const used = Math.max(0, Math.ceil(t.limit - t.remaining));
        return withRetry({ status: 429, type: 'tokens', code: 'rate_limit_exceeded', message: `${head}: Limit ${t.limit}, Used ${used}, Requested ${v.requested ?? 0}.${again || ' Lower max_tokens or the prompt.'}` });
      }
      case 'parallel':
        return withRetry({ status: 429, type: 'requests', code: 'rate_limit_exceeded', message: `Too many requests in flight for key '${name}' (max_parallel_requests): wait for one to finish.${again}` });
      default:
        return { status: 503, code: 'rate_limiter_unavailable', message: 'the rate limiter did not answer in time (router primary busy or restarting): try again', retryAfterS: 1 };
    }
  },
};
