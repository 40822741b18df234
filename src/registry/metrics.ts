import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HealthProber } from './health-prober.js';
import type { StateFile } from './state-file.js';
import type { ServiceStore } from './store.js';

/** Events counted as plain numbers on the hot paths (heartbeat, register) and read at scrape time. */
export interface RegistryCounters {
  registrations: number;
  deregistrations: number;
  heartbeats: number;
  evictions: number;
}

export const newRegistryCounters = (): RegistryCounters => ({ registrations: 0, deregistrations: 0, heartbeats: 0, evictions: 0 });

/** State-file writes take from a fraction of a millisecond (one journal line) to seconds (a large snapshot on a slow disk). */
const WRITE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface RegistryMetricsSources {
  store: ServiceStore;
  prober: HealthProber;
  counters: RegistryCounters;
  /** Open change-feed streams (GET /events). */
  subscribers: () => number;
  stateFile?: StateFile;
  /** Requests refused by the flood caps and the address guard, by reason (admission.ts). */
  refused?: Readonly<Record<string, number>>;
}

/**
 * The registry's Prometheus metrics. Everything but the write histogram is read at scrape time
 * from counts the registry keeps anyway, so no request pays for a labelled child.
 */
export class RegistryMetrics {
  readonly registry = new Registry();

  constructor(src: RegistryMetricsSources) {
    const registers = [this.registry];
    const { store, prober, counters } = src;
    new Gauge({
      name: 'infini_registry_services',
      help: 'Registered services by metadata.type and heartbeat health',
      labelNames: ['type', 'health'] as const,
      registers,
      collect() {
        this.reset();
        store.evaluateHealth();
        for (const [type, { total, healthy }] of store.countsByType()) {
          this.set({ type, health: 'healthy' }, healthy);
          this.set({ type, health: 'unhealthy' }, total - healthy);
        }
      },
    });
    const plain = (name: string, help: string, read: () => number) =>
      new Counter({ name, help, registers, collect() { this.reset(); this.inc(read()); } });
    plain('infini_registry_registrations_total', 'Registrations accepted (POST /services, new or replacing)', () => counters.registrations);
    plain('infini_registry_deregistrations_total', 'Services removed by DELETE /services/{name}', () => counters.deregistrations);
    plain('infini_registry_heartbeats_total', 'Heartbeats accepted (POST /services/{name}/heartbeat)', () => counters.heartbeats);
    plain('infini_registry_evictions_total', 'Services removed by the stale cleanup', () => counters.evictions);
    plain('infini_registry_state_writes_total', 'State-file writes (journal appends and snapshots)', () => store.stateCounters()?.writes ?? 0);
    const refused = src.refused;
    new Counter({
      name: 'infini_registry_refused_total',
      help: 'Requests refused by reason: rate_limit, heartbeat_rate_limit (429, per client address), max_services (429, the registry is full), address (400, a service address the guard refuses)',
      labelNames: ['reason'] as const,
      registers,
      collect() {
        this.reset();
        if (refused) for (const [reason, n] of Object.entries(refused)) this.inc({ reason }, n);
      },
    });
    new Counter({
      name: 'infini_registry_health_probes_total',
      help: 'Finished background health probes by result (inconclusive: the registry was too busy to time it)',
      labelNames: ['result'] as const,
      registers,
      collect() {
        this.reset();
        const s = prober.stats();
        this.inc({ result: 'ok' }, s.done - s.failed - s.inconclusive);
        this.inc({ result: 'failed' }, s.failed);
        this.inc({ result: 'inconclusive' }, s.inconclusive);
      },
    });
    new Counter({
      name: 'infini_registry_feed_events_total',
      help: 'Change-feed events by type',
      labelNames: ['type'] as const,
      registers,
      collect() {
        this.reset();
        for (const [type, n] of Object.entries(store.feedEvents())) this.inc({ type }, n);
      },
    });
    new Gauge({ name: 'infini_registry_feed_subscribers', help: 'Open change-feed streams (GET /events)', registers, collect() { this.set(src.subscribers()); } });
    const writes = new Histogram({
      name: 'infini_registry_state_write_duration_seconds',
      help: 'Duration of state-file writes (journal append with fdatasync, or snapshot)',
      buckets: WRITE_BUCKETS,
      registers,
    });
    if (src.stateFile) src.stateFile.onWrite = (s) => writes.observe(s);
    collectDefaultMetrics({ register: this.registry, prefix: 'infini_registry_' });
  }
}
