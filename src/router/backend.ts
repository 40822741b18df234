import { httpUrl } from '../common/address.js';
import { fnv1a } from '../common/hash.js';
import type { Member } from './backend-pool.js';
import type { EngineSnapshot } from './engine-signals.js';
import { BackendTraffic } from './traffic-stats.js';
import type { AddressGuard } from '../common/address-guard.js';
import { probeGuard, type ProbeGuard } from '../common/guarded-lookup.js';
import { UpstreamPool } from './upstream/pool.js';

/** What a backend is, as described by a static entry or a registry record. */
export interface BackendSpec {
  name: string;
  host: string;
  port: number;
  url: string;
  weight: number;
  metadata: Record<string, unknown>;
  /**
   * A static service (from --static-services): discovery never changes or removes it, and a
   * registry record of the same name is ignored.
   */
  isStatic: boolean;
}

export interface PoolOptions {
  connectTimeoutMs: number;
  /** Longest wait for response headers (a non-streaming generation sends them at the very end). */
  headersTimeoutMs: number;
  /** Longest silence between body chunks. */
  idleTimeoutMs: number;
  /** Addresses the router may connect to, for backends from the registry (static ones are the operator's own). */
  guard?: AddressGuard;
}

/** One probe guard per address guard, shared by its backends. */
const probeGuards = new WeakMap<AddressGuard, ProbeGuard>();
function probeGuardOf(guard: AddressGuard): ProbeGuard {
  let g = probeGuards.get(guard);
  if (!g) probeGuards.set(guard, (g = probeGuard(guard)));
  return g;
}

/** How long an unused upstream connection stays open (a server's Keep-Alive hint can shorten it). */
const KEEP_ALIVE_MS = 30_000;

const EJECT_BASE_MS = 30_000;
const EJECT_MAX_MS = 5 * 60_000;

/** The set holding a backend, told when what it indexes the backend by changes. */
export interface BackendOwner {
  /** listedHealthy, checkOk or ejectedUntil changed. */
  routabilityChanged(b: Backend): void;
  /** inFlight changed. */
  loadChanged(b: Backend): void;
}

/** `metadata.models` as the router reads it: the strings in it. */
function modelsOf(metadata: Record<string, unknown>): string[] {
  return Array.isArray(metadata.models) ? metadata.models.filter((m): m is string => typeof m === 'string') : [];
}

/**
 * One upstream inference server: its identity, its keep-alive connection pool, its health state
 * (`routable = listed healthy AND own check ok AND not ejected`) and its counters.
 */
export class Backend {
  name: string;
  host = '';
  port = 0;
  url = '';
  /** Host header for upstream requests and a path prefix from the registered URL (usually ''). */
  hostHeader = '';
  basePath = '';
  babysitterUrl = '';
  weight = 1;
  metadata: Record<string, unknown> = {};
  models: string[] = [];
  modelSet = new Set<string>();
  /** `metadata.cache_type`, with no value counting as "paged". */
  cacheType: string = 'paged';
  hasCacheType = false;
  /** A static service (see BackendSpec.isStatic); also see keptWhenUnlisted. */
  isStatic = false;
  /** Stable 32-bit hash of the name, for rendezvous hashing. */
  nameHash = 0;
  pool!: UpstreamPool;
  /** Keeps health checks (and their redirects) to allowed addresses; none for static services. */
  probeGuard: ProbeGuard | undefined;

  /** Set by the BackendSet holding this backend: routability and load changes update its index. */
  owner: BackendOwner | undefined;
  /** This backend in each pool of the set's index (see backend-pool.ts). */
  members: Member[] = [];
  /** In the routable lists of its pools. */
  attached = false;
  /** Position in the set's heap of ejections that end by time. */
  ejectPos = -1;
  /** Round-robin state of models this backend stopped declaring, kept in case it declares them again. */
  rrCarry: Map<string, number> | undefined;

  /**
   * Requests this process may have in flight to it (0: unlimited; see backend-limits.ts), and
   * whether it has that many: a full backend is no candidate (its set takes it out of the index).
   */
  maxConcurrency = 0;
  full = false;

  private listed = true;
  private checked = true;
  private ejectEnd = 0;
  private flying = 0;

  get listedHealthy(): boolean {
    return this.listed;
  }
  set listedHealthy(v: boolean) {
    if (v === this.listed) return;
    this.listed = v;
    this.owner?.routabilityChanged(this);
  }
  get checkOk(): boolean {
    return this.checked;
  }
  set checkOk(v: boolean) {
    if (v === this.checked) return;
    this.checked = v;
    this.owner?.routabilityChanged(this);
  }
  get ejectedUntil(): number {
    return this.ejectEnd;
  }
  set ejectedUntil(v: number) {
    if (v === this.ejectEnd) return;
    this.ejectEnd = v;
    this.owner?.routabilityChanged(this);
  }
  get inFlight(): number {
    return this.flying;
  }
  set inFlight(v: number) {
    this.flying = v;
    this.owner?.loadChanged(this);
  }

  ejections = 0;
  consecutiveFailures = 0;
  /** Health checks in a row that got no HTTP answer at all (see HealthChecker). */
  unansweredChecks = 0;
  /**
   * When a full registry listing first lacked this backend (undefined while listed). Only a
   * listing can make a backend missing: a live change feed is exact, and an unreachable registry
   * says nothing, so neither ages it.
   */
  missingSince: number | undefined = undefined;

  requestCount = 0;
  errorCount = 0;
  /** Its traffic counters (metrics, dashboard); the set holding it gives it the ones kept under its name. */
  traffic: BackendTraffic;
  /** Seconds taken by the last health check (compatible `response_time`). */
  checkSeconds = 0;
  /** The engine's own load gauges, when polled (engine-signals.ts). */
  engine: EngineSnapshot | undefined = undefined;
  lastResponseMs = 0;

  constructor(
    spec: BackendSpec,
    private readonly poolOptions: PoolOptions,
  ) {
    this.name = spec.name;
    this.nameHash = fnv1a(spec.name);
    this.traffic = new BackendTraffic(spec.name);
    this.apply(spec);
  }

  /** Updates the description; a changed URL gets a fresh pool (the old one drains in the background). */
  apply(spec: BackendSpec): void {
    this.host = spec.host;
    this.port = spec.port;
    this.weight = spec.weight;
    this.isStatic = spec.isStatic;
    this.metadata = spec.metadata;
    const models = modelsOf(spec.metadata);
    this.models = models;
    this.modelSet = new Set(models);
    const ct = spec.metadata.cache_type;
    this.hasCacheType = typeof ct === 'string';
    this.cacheType = typeof ct === 'string' ? ct : 'paged';
    this.babysitterUrl = httpUrl(spec.host, spec.port + 1);
    if (spec.url !== this.url) {
      const parsed = new URL(spec.url);
      const old = this.pool;
      this.url = spec.url;
      this.hostHeader = parsed.host;
      this.basePath = parsed.pathname === '/' ? '' : parsed.pathname.replace(/\/+$/, '');
      const guard = spec.isStatic ? undefined : this.poolOptions.guard;
      this.pool = UpstreamPool.forOrigin(parsed, { ...this.poolOptions, keepAliveMs: KEEP_ALIVE_MS, guard });
      this.probeGuard = guard && probeGuardOf(guard);
      if (old) void old.close().catch(() => undefined);
    }
  }

  /** Whether applying `spec` would change what the index sorts this backend by: weight, models, size class. */
  routingChanges(spec: BackendSpec): boolean {
    if (spec.weight !== this.weight) return true;
    const ct = spec.metadata.cache_type;
    if ((typeof ct === 'string') !== this.hasCacheType || (typeof ct === 'string' ? ct : 'paged') !== this.cacheType) return true;
    const models = modelsOf(spec.metadata);
    return models.length !== this.models.length || models.some((m, i) => m !== this.models[i]);
  }

  /**
   * Whether a registry listing that lacks this backend leaves it in place (no grace period, no
   * removal): a static service, or a registry record with `metadata.static = true` (the original's
   * way to outlive a registry that forgets it), which its deregistration still removes.
   */
  get keptWhenUnlisted(): boolean {
    return this.isStatic || this.metadata.static === true;
  }

  routable(now: number): boolean {
    return this.listedHealthy && this.checkOk && this.ejectedUntil <= now;
  }

  /** A failed attempt (connect error, reset before the response, 502/503 answer). */
  recordFailure(maxErrors: number, now: number): boolean {
    this.errorCount++;
    this.consecutiveFailures++;
    if (this.consecutiveFailures >= maxErrors && this.ejectedUntil <= now) {
      const ms = Math.min(EJECT_MAX_MS, EJECT_BASE_MS * 2 ** Math.min(this.ejections, 10));
      this.ejections++;
      this.traffic.ejections++;
      this.ejectedUntil = now + ms;
      this.consecutiveFailures = 0;
      return true;
    }
    return false;
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0;
  }

  /** A passing health check ends an ejection early. */
  endEjection(): void {
    this.ejectedUntil = 0;
    this.consecutiveFailures = 0;
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => undefined);
  }

  /** Compatible ServiceInfo for /services and /stats, plus the new health detail. */
  info(now: number): Record<string, unknown> {
    return {
      name: this.name,
      host: this.host,
      port: this.port,
      url: this.url,
      babysitter_url: this.babysitterUrl,
      healthy: this.routable(now),
      request_count: this.requestCount,
      error_count: this.errorCount,
      response_time: this.checkSeconds,
      weight: this.weight,
      models: this.models,
      metadata: this.metadata,
      in_flight: this.inFlight,
      max_concurrency: this.maxConcurrency,
      last_response_ms: this.lastResponseMs,
      listed_healthy: this.listedHealthy,
      check_ok: this.checkOk,
      ejected_until: this.ejectedUntil > now ? Math.floor(this.ejectedUntil / 1000) : null,
      static: this.keptWhenUnlisted,
    };
  }
}
