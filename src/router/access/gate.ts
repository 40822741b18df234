/**
 * The router's door when keys are configured: every request shows a key (Bearer or x-api-key);
 * local endpoints need the scope they are for; proxied requests need a key that may use their
 * model and is within its limits. Built only when keys are configured: an open router has no gate
 * and pays one branch per request for it.
 */
import type { Http1Response } from '../../common/http1/response.js';
import type { Http1Request } from '../../common/http1/server.js';
import type { Backend } from '../backend.js';
import type { RouterError, RouterErrors } from '../errors.js';
import type { RequestGrant, RequestInfo } from '../request-info.js';
import { USAGE_TAIL_BYTES, totalTokens } from '../usage-scan.js';
import { accessError } from './access-errors.js';
import { presentedKey, type KeyEntry, type KeySet } from './api-keys.js';
import type { KeySource } from './key-source.js';
import { RateLimiter, rateLimitHeaders, type Limits, type Verdict } from './rate-limits.js';

/** Counts and releases per-key limits: in this process, or in the primary of --workers (shared-limits.ts). */
export interface LimitKeeper {
  /** Calls `done` with the verdict (at once here; after a round trip to the primary there). */
  admit(name: string, limits: Limits, reserve: number, done: (v: Verdict) => void): void;
  settle(name: string, limits: Limits, reserved: number, used: number): void;
  /** The configured keys changed: state of keys that are gone may go. */
  retain(names: ReadonlySet<string>): void;
}

export class LocalLimits implements LimitKeeper {
  constructor(readonly limiter = new RateLimiter()) {}
  admit(name: string, limits: Limits, reserve: number, done: (v: Verdict) => void): void {
    done(this.limiter.admit(name, limits, reserve));
  }
  settle(name: string, limits: Limits, reserved: number, used: number): void {
    this.limiter.settle(name, limits, reserved, used);
  }
  retain(names: ReadonlySet<string>): void {
    this.limiter.retain(names);
  }
}

/** Which key a local endpoint needs. */
export type Need = 'none' | 'client' | 'admin';

/** Request headers never forwarded to a backend once keys are configured: the client's key. */
export const CLIENT_KEY_HEADERS: ReadonlySet<string> = new Set(['authorization', 'x-api-key']);

/** Bytes of prompt text per token, for the reservation before usage is known (OpenAI's rule of thumb). */
const BYTES_PER_TOKEN = 4;

/** Admission of one keyed request: its reservation, settled once with what the answer used. */
class Grant implements RequestGrant {
  readonly scansUsage: boolean;
  private total = -1;
  private settled = false;

  constructor(
    private readonly keeper: LimitKeeper,
    private readonly entry: KeyEntry,
    private readonly limits: Limits,
    private readonly reserved: number,
    private readonly promptEstimate: number,
    private readonly maxTokens: number | undefined,
    private readonly verdict: Verdict,
  ) {
    this.scansUsage = limits.tpm !== undefined;
  }

  scan(buf: Buffer, start: number, end: number): void {
    const t = totalTokens(buf, Math.max(start, end - USAGE_TAIL_BYTES), end);
    if (t >= 0) this.total = t;
  }

  headers(out: string[]): void {
    rateLimitHeaders(this.verdict, out);
  }

  settle(status: number, completionTokens: number): void {
    if (this.settled) return;
    this.settled = true;
    let used = 0;
    // the answer's usage when it had one; else an estimate for an answer that was given
    if (this.total >= 0) used = this.total;
    else if (status >= 200 && status < 400) used = this.promptEstimate + (completionTokens >= 0 ? completionTokens : (this.maxTokens ?? 0));
    this.keeper.settle(this.entry.name, this.limits, this.reserved, used);
  }
}

export interface AccessGateOptions {
  source: KeySource;
  keeper: LimitKeeper;
  errors: RouterErrors;
  /** `/metrics` needs an admin key too (--metrics-auth). */
  metricsAuth: boolean;
  /** Where an admitted request goes (the forwarder). */
  forward: (req: Http1Request, res: Http1Response, info: RequestInfo) => void;
  /** How a proxied request is refused: answered, counted and logged by the forwarder (errors.send when absent). */
  refuse?: (req: Http1Request, res: Http1Response, info: RequestInfo, err: RouterError, headers?: Record<string, string>) => void;
}

export class AccessGate {
  private keys: KeySet;

  constructor(private readonly opts: AccessGateOptions) {
    this.keys = opts.source.current;
    opts.source.onChange((keys) => {
      this.keys = keys;
      opts.keeper.retain(keys.names);
    });
  }

  /** The key a local path needs: health and the dashboard's page are open, model lists need a key, the rest admin. */
  need(path: string): Need {
    if (path === '/health' || path === '/status') return 'none';
    if (path === '/models' || path === '/v1/models') return 'client';
    if (path === '/metrics') return this.opts.metricsAuth ? 'admin' : 'none';
    // the page and its static files hold no data (a browser cannot send a key to load them); its data needs admin
    if ((path === '/dashboard' || path.startsWith('/dashboard/')) && !path.startsWith('/dashboard/api/')) return 'none';
    return 'admin';
  }

  /** The key of the request, or undefined after answering 401 (through `refuse` for a proxied request). */
  private authenticate(req: Http1Request, res: Http1Response, info?: RequestInfo): KeyEntry | undefined {
    const presented = presentedKey(req.headers);
    const entry = presented === undefined ? undefined : this.keys.lookup(presented);
    if (entry !== undefined) return entry;
    const err = presented === undefined ? accessError.missingKey() : accessError.unknownKey();
    if (info === undefined) this.opts.errors.send(res, err);
    else this.refuse(req, res, info, err);
    return undefined;
  }

  private refuse(req: Http1Request, res: Http1Response, info: RequestInfo, err: RouterError, headers?: Record<string, string>): void {
    if (this.opts.refuse !== undefined) this.opts.refuse(req, res, info, err, headers);
    else this.opts.errors.send(res, err, headers);
  }

  /** Whether a local endpoint may answer; false after answering 401/403. */
  allowLocal(path: string, req: Http1Request, res: Http1Response): boolean {
    const need = this.need(path);
    if (need === 'none') return true;
    const entry = this.authenticate(req, res);
    if (entry === undefined) return false;
    if (need === 'admin' && entry.scope !== 'admin') {
      this.opts.errors.send(res, accessError.notAdmin(entry.name, path));
      return false;
    }
    return true;
  }

  /** The models of a list the request's key may use (the list itself when keys allow everything). */
  visibleModels<T extends { id: string }>(req: Http1Request, list: T[]): T[] {
    const presented = presentedKey(req.headers);
    const entry = presented === undefined ? undefined : this.keys.lookup(presented);
    if (entry === undefined) return [];
    return list.filter((m) => entry.allows(m.id));
  }

  /** A proxied request: checked, counted, then forwarded; or answered 400/401/404/429 here. */
  admit(req: Http1Request, res: Http1Response, info: RequestInfo): void {
    const entry = this.authenticate(req, res, info);
    if (entry === undefined) return;
    const model = info.model;
    if (model === undefined) {
      if (!entry.allModels) {
        this.refuse(req, res, info, accessError.modelRequired(entry.name));
        return;
      }
    } else if (!entry.allows(model)) {
      this.refuse(req, res, info, accessError.modelNotAllowed(model));
      return;
    }
    if (entry.priority !== undefined) info.priority = entry.priority;
    const limits = entry.limits;
    if (limits === undefined) {
      this.opts.forward(req, res, info);
      return;
    }
    const promptEstimate = limits.tpm !== undefined ? Math.ceil(info.size / BYTES_PER_TOKEN) : 0;
    const maxTokens = info.maxTokens !== undefined ? Math.ceil(info.maxTokens) : undefined;
    const reserve = limits.tpm !== undefined ? promptEstimate + (maxTokens ?? 0) : 0;
    this.opts.keeper.admit(entry.name, limits, reserve, (v) => {
      if (!v.ok) {
        const err = accessError.limited(entry.name, v);
        const headers = Object.fromEntries(pairs(rateLimitHeaders(v, [])));
        // also in the original error format (which sends no Retry-After of its own)
        if (err.retryAfterS !== undefined) headers['retry-after'] = String(err.retryAfterS);
        this.refuse(req, res, info, err, headers);
        return;
      }
      const grant = new Grant(this.opts.keeper, entry, limits, reserve, promptEstimate, maxTokens, v);
      // the client left while the shared limiter answered: nothing to forward
      if (res.finished || res.socket.destroyed) {
        grant.settle(0, -1);
        return;
      }
      info.grant = grant;
      this.opts.forward(req, res, info);
    });
  }

  /** The `authorization` line a backend gets from the router (backend_key_env), or ''. */
  readonly backendLine = (backend: Backend): string => this.keys.backendLine(backend.name);
}

function pairs(flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
