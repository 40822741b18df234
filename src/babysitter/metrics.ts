import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RegistrationKeeper } from '../registry/registration-keeper.js';
import type { BackendState, RestartReason, Supervisor } from './supervisor.js';

const STATES: readonly BackendState[] = ['starting', 'ready', 'not-ready', 'backoff', 'failed', 'stopping', 'stopped'];
const RESTART_REASONS: readonly RestartReason[] = ['exit', 'crash', 'signal', 'hang', 'startup_timeout', 'spawn_failed', 'port_in_use'];
/** Model loading takes from seconds to many minutes: 0.5 s to 30 min. */
const STARTUP_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1200, 1800];

/**
 * Prometheus metrics of one babysitter, every series labelled with its name. Values are read at
 * scrape time from what the supervisor (and the registration keeper) count anyway; only the time to
 * ready is observed as it happens.
 */
export class BabysitterMetrics {
  readonly registry = new Registry();

  constructor(name: string, supervisor: Supervisor, keeper?: RegistrationKeeper) {
    this.registry.setDefaultLabels({ name });
    const registers = [this.registry];
    const s = supervisor;
    new Gauge({
      name: 'infini_babysitter_backend_state',
      help: '1 for the backend\'s current state, 0 for the others',
      labelNames: ['state'] as const,
      registers,
      collect() {
        for (const state of STATES) this.set({ state }, s.state === state ? 1 : 0);
      },
    });
    new Counter({
      name: 'infini_babysitter_restarts_total',
      help: 'Backend restarts, by why it went down before (exit: code 0, crash: other code, signal, hang: liveness, startup_timeout, spawn_failed, port_in_use)',
      labelNames: ['reason'] as const,
      registers,
      collect() {
        this.reset();
        for (const reason of RESTART_REASONS) this.inc({ reason }, s.restartsByReason.get(reason) ?? 0);
      },
    });
    const startup = new Histogram({ name: 'infini_babysitter_time_to_ready_seconds', help: 'From spawning the backend to its first passing readiness probe', buckets: STARTUP_BUCKETS, registers });
    s.onStartupTime = (seconds) => startup.observe(seconds);
    new Counter({
      name: 'infini_babysitter_probe_failures_total',
      help: 'Failed probes of the running backend, by probe',
      labelNames: ['probe'] as const,
      registers,
      collect() {
        this.reset();
        this.inc({ probe: 'readiness' }, s.probeFailures.readiness);
        this.inc({ probe: 'liveness' }, s.probeFailures.liveness);
      },
    });
    new Gauge({
      name: 'infini_babysitter_last_exit_code',
      help: 'Exit code of the backend\'s last exit; -1 if none yet or killed by a signal',
      registers,
      collect() {
        this.set(s.lastExitCode ?? -1);
      },
    });
    new Gauge({
      name: 'infini_babysitter_last_exit_signal',
      help: '1 labelled with the signal that ended the backend last (no series if none did)',
      labelNames: ['signal'] as const,
      registers,
      collect() {
        this.reset();
        if (s.lastExitSignal !== null) this.set({ signal: s.lastExitSignal }, 1);
      },
    });
    new Gauge({
      name: 'infini_babysitter_backend_uptime_seconds',
      help: 'Since the running backend process was spawned; 0 when none runs',
      registers,
      collect() {
        this.set(s.spawnedAt === undefined ? 0 : (Date.now() - s.spawnedAt) / 1000);
      },
    });
    if (!keeper) return;
    new Counter({
      name: 'infini_babysitter_registrations_total',
      help: 'Successful registrations with the registry (first ones and re-registrations)',
      registers,
      collect() {
        this.reset();
        this.inc(keeper.registrations);
      },
    });
    new Counter({
      name: 'infini_babysitter_registry_failures_total',
      help: 'Heartbeats and registrations the registry failed to answer',
      registers,
      collect() {
        this.reset();
        this.inc(keeper.failures);
      },
    });
  }
}
