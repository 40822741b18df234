import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../common/log.js';
import type { CommandLine } from './command-line.js';
import type { BabysitterConfig } from './config.js';
import { programProblem, watchAvailable, watchedCommand } from './group-watch.js';
import { pidFilePath, removeGroupRecord, stopPreviousGroup, writeGroupRecord } from './pid-file.js';
import { describeProcess, portInUse, portOwnership } from './port-owner.js';
import { stopGroup } from './process-group.js';
import { healthProblem, probeLive, probeReady, type ModelObject } from './probes.js';

/** `not-ready`: running and once ready, but its last readiness probe failed (not routable). */
export type BackendState = 'starting' | 'ready' | 'not-ready' | 'backoff' | 'failed' | 'stopping' | 'stopped';

/** Why the backend was (re)started again, as counted in the metrics. */
export type RestartReason = 'exit' | 'crash' | 'signal' | 'hang' | 'startup_timeout' | 'spawn_failed' | 'port_in_use';

export interface SupervisorHooks {
  /** A start became ready: register it. */
  onReady(models: ModelObject[]): void;
  /** While running: a readiness probe failed (`ready` false, with why) or passed again. */
  onReadiness(ready: boolean, reason?: string): void;
  /** The backend stopped being ready (exit, hang, failed start); `reason` says why. */
  onDown(reason: string): void;
}

/** How long ready without trouble resets the restart back-off. */
const STABLE_AFTER_MS = 10 * 60_000;
const READY_PROBE_TIMEOUT_MS = 2_000;
const RECENT_LINES = 200;

/**
 * Supervises one backend process group: starts it as a direct child in its own group (under the
 * parent-death watch, see group-watch.ts), waits until it is ready (answered by a process of that
 * group, not by whoever else holds the port), probes readiness and liveness while running, restarts
 * it with exponential back-off when it exits, hangs or fails to start, and stops the whole group
 * (SIGTERM, grace, SIGKILL) on request.
 */
export class Supervisor {
  state: BackendState = 'stopped';
  restartCount = 0;
  lastExitCode: number | null = null;
  lastExitSignal: string | null = null;
  lastDownReason: string | null = null;
  /** Why a running backend is not ready (failed readiness probe, port answered by another process). */
  notReadyReason: string | null = null;
  /** Consecutive failed readiness probes while running. */
  readinessFailures = 0;
  models: ModelObject[] = [];
  pid: number | undefined;
  readySince: number | undefined;
  nextStartAt: number | undefined;
  readonly recentLines: string[] = [];
  /** Whether backends run under the parent-death watch (a POSIX shell is needed). */
  readonly watched = watchAvailable();
  readonly pidFile: string;
  /** When the current backend process was spawned (undefined while none runs). */
  spawnedAt: number | undefined;
  /** Restarts done, by the reason the backend went down before them (metrics). */
  readonly restartsByReason = new Map<RestartReason, number>();
  /** Failed probes while running, by probe (metrics). */
  readonly probeFailures = { readiness: 0, liveness: 0 };
  /** Told each start's time to ready in seconds (the metrics' histogram). */
  onStartupTime: ((seconds: number) => void) | undefined;

  private child: ChildProcess | undefined;
  private generation = 0;
  private consecutiveFailures = 0;
  /** Whether the hooks heard that the current start is down. */
  private downNotified = false;
  /** Why the backend went down last: the label of the restart that follows. */
  private downKind: RestartReason = 'exit';
  private timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly cfg: BabysitterConfig,
    private readonly cmd: CommandLine,
    /** The babysitter's log (its HTTP endpoints write theirs here too). */
    readonly log: Logger,
    private readonly hooks: SupervisorHooks,
  ) {
    this.pidFile = pidFilePath(cfg.port);
    if (!this.watched) log.warn('no /bin/sh: the backend will not stop by itself if the babysitter is killed');
  }

  /** First stops a group a previous babysitter on this port left running (pid file), then launches. */
  start(): void {
    const gen = this.generation;
    this.state = 'starting';
    void stopPreviousGroup(this.pidFile, this.cfg.stopGraceMs, this.log)
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'cannot check the previous backend group'))
      .then(() => {
        if (gen === this.generation) void this.launch();
      });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private remember(line: string): void {
    this.recentLines.push(line);
    if (this.recentLines.length > RECENT_LINES) this.recentLines.splice(0, this.recentLines.length - RECENT_LINES);
  }

  /** Running: started, became ready, and not stopped or restarted since (`gen` is still current). */
  private running(gen: number): boolean {
    return gen === this.generation && (this.state === 'ready' || this.state === 'not-ready');
  }

  private async launch(): Promise<void> {
    const gen = ++this.generation;
    this.state = 'starting';
    this.nextStartAt = undefined;
    this.models = [];
    this.notReadyReason = null;
    this.readinessFailures = 0;
    this.downNotified = false;
    const env = { ...process.env, ...this.cfg.backend.env };
    // Values of env are never logged, only their names.
    this.log.info({ program: this.cmd.program, args: this.cmd.args, cwd: this.cmd.cwd, env_keys: Object.keys(this.cfg.backend.env), attempt: this.restartCount + 1 }, 'starting backend');
    // With a shell in front, a missing program would only show as exit 127: name it here instead.
    const problem = programProblem(this.cmd.program, this.cmd.cwd, env.PATH);
    if (problem) return this.spawnFailed(problem);
    // Never start next to another listener: its answers would pass for ours.
    const use = await portInUse(this.cfg.port);
    if (gen !== this.generation) return;
    if (use.inUse) {
      const reason = `port ${this.cfg.port} in use by ${use.holder ? describeProcess(use.holder) : 'another process'}`;
      this.log.error({ port: this.cfg.port, holder_pid: use.holder?.pid ?? null, holder: use.holder?.comm ?? null }, 'backend port already in use: not starting the backend');
      this.remember(`[babysitter] ${reason}`);
      this.lastExitCode = null;
      this.lastExitSignal = null;
      this.downKind = 'port_in_use';
      this.failed(reason);
      return;
    }
    const startedAt = Date.now();
    const run = this.watched ? watchedCommand(this.cmd.program, this.cmd.args, this.cfg.stopGraceMs, this.pidFile) : this.cmd;
    let child: ChildProcess;
    try {
      child = spawn(run.program, run.args, {
        cwd: this.cmd.cwd,
        env,
        detached: true,
        // fd 3: the watcher's end of the parent-death socket; ours stays open as long as we live
        stdio: this.watched ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      return this.spawnFailed((err as Error).message);
    }
    this.child = child;
    this.pid = child.pid;
    this.spawnedAt = Date.now();
    // our end of the watch socket: end-of-file when the group is gone, nothing else is expected
    child.stdio[3]?.on('error', () => undefined);
    if (child.pid !== undefined) writeGroupRecord(this.pidFile, child.pid, this.cfg.port, this.cmd.program, this.log);
    for (const [stream, source] of [['stdout', child.stdout!], ['stderr', child.stderr!]] as const) {
      createInterface({ input: source, crlfDelay: Infinity }).on('line', (line) => {
        this.remember(`[${stream}] ${line}`);
        this.log.info({ stream, line }, 'backend output');
      });
    }
    child.on('error', (err) => {
      // spawn errors (ENOENT of the cwd, EACCES) arrive here; an exit event may not follow
      if (gen !== this.generation) return;
      this.release(child);
      this.child = undefined;
      this.pid = undefined;
      this.spawnedAt = undefined;
      this.spawnFailed(err.message);
    });
    child.on('exit', (code, signal) => {
      // a newer generation means we are stopping this group ourselves: not a crash
      if (gen !== this.generation) return;
      this.lastExitCode = code;
      this.lastExitSignal = signal;
      // the shell in front answers 127/126 when it cannot exec the program (checked above, but the
      // file may have changed since)
      const execFailed = this.watched && this.state === 'starting' && (code === 127 || code === 126);
      if (execFailed) this.log.error({ code, program: this.cmd.program, err: `exit ${code} before ready: a command was ${code === 127 ? 'not found' : 'not executable'} (see the output)` }, 'backend failed to start');
      else this.log.warn({ code, signal, state: this.state }, 'backend exited');
      const reason = execFailed ? 'spawn failed' : code === 0 ? 'exited' : 'crashed';
      this.downKind = execFailed ? 'spawn_failed' : signal !== null ? 'signal' : code === 0 ? 'exit' : 'crash';
      const pgid = child.pid!;
      this.child = undefined;
      this.pid = undefined;
      this.spawnedAt = undefined;
      this.goingDown(reason);
      // the rest of its group (workers holding GPU memory, the watcher) goes before any restart
      void stopGroup(pgid, 2_000).then(() => {
        this.release(child);
        if (gen === this.generation) this.failed(reason);
      });
    });
    void this.waitReady(gen, child, startedAt);
  }

  private spawnFailed(message: string): void {
    this.log.error({ err: message, program: this.cmd.program }, 'backend failed to start');
    this.remember(`[babysitter] ${message}`);
    this.lastExitCode = null;
    this.lastExitSignal = null;
    this.downKind = 'spawn_failed';
    this.failed('spawn failed');
  }

  /** After its group is gone: closes our end of the watch socket and forgets the pid file. */
  private release(child: ChildProcess): void {
    child.stdio[3]?.destroy();
    removeGroupRecord(this.pidFile);
  }

  private async waitReady(gen: number, child: ChildProcess, startedAt: number): Promise<void> {
    let delay = 200;
    let noted = false;
    while (gen === this.generation && this.state === 'starting' && this.child === child) {
      const models = await probeReady(this.cfg.backendUrl, this.cfg.backend.type === 'mock' ? undefined : this.cfg.backend.models, READY_PROBE_TIMEOUT_MS);
      if (gen !== this.generation || this.state !== 'starting') return;
      // an answer from a listener outside our group that predates our backend is not ours (an orphan)
      const own = models ? portOwnership(this.cfg.port, child.pid!) : undefined;
      if (models && own?.owner === 'later') {
        this.log.info({ port: this.cfg.port, holder_pid: own.holder.pid, holder: own.holder.comm, backend_pid: child.pid }, 'the backend port is held by a process outside the backend group that started after it (e.g. docker-proxy): trusting it');
      }
      if (models && own?.owner !== 'other') {
        this.state = 'ready';
        this.readySince = Date.now();
        this.models = models;
        this.notReadyReason = null;
        const startupS = (Date.now() - startedAt) / 1000;
        this.log.info({ port: this.cfg.port, models: models.map((m) => m.id), startup_s: startupS }, 'backend ready');
        this.onStartupTime?.(startupS);
        this.hooks.onReady(models);
        this.watchReadiness(gen);
        this.watchLiveness(gen);
        return;
      }
      if (own?.owner === 'other') {
        this.notReadyReason = `port ${this.cfg.port} answered by ${describeProcess(own.holder)}, not by the backend`;
        if (!noted) this.log.warn({ port: this.cfg.port, holder_pid: own.holder.pid, holder: own.holder.comm, backend_pid: child.pid }, 'the backend port is answered by a process outside the backend: not ready');
        noted = true;
      }
      if (Date.now() - startedAt > this.cfg.startupTimeoutMs) {
        this.log.error({ timeout_s: this.cfg.startupTimeoutMs / 1000 }, 'backend not ready within the startup timeout');
        await this.restartGroup(gen, 'startup timeout', 'startup_timeout');
        return;
      }
      await new Promise((r) => this.later(delay, () => r(undefined)));
      delay = Math.min(1000, Math.round(delay * 1.5));
    }
  }

  /**
   * While running, one failed /health probe makes the backend not ready (its record leaves the
   * routable set at once), one passing probe makes it ready again. Restarting stays liveness's call.
   */
  private watchReadiness(gen: number): void {
    const probe = async () => {
      if (!this.running(gen)) return;
      const problem = await healthProblem(this.cfg.backendUrl, this.cfg.readinessTimeoutMs);
      if (!this.running(gen)) return;
      if (problem === undefined) {
        this.readinessFailures = 0;
        if (this.state === 'not-ready') {
          this.state = 'ready';
          this.notReadyReason = null;
          this.log.info({ port: this.cfg.port }, 'backend ready again');
          this.hooks.onReadiness(true);
        }
      } else {
        this.readinessFailures++;
        this.probeFailures.readiness++;
        if (this.state === 'ready') {
          this.state = 'not-ready';
          this.notReadyReason = problem;
          this.log.warn({ port: this.cfg.port, reason: problem }, 'backend not ready');
          this.hooks.onReadiness(false, problem);
        }
      }
      this.later(this.cfg.readinessIntervalMs, () => void probe());
    };
    this.later(this.cfg.readinessIntervalMs, () => void probe());
  }

  private watchLiveness(gen: number): void {
    let failures = 0;
    const probe = async () => {
      if (!this.running(gen)) return;
      const alive = await probeLive(this.cfg.backendUrl, this.cfg.livenessTimeoutMs);
      if (!this.running(gen)) return;
      failures = alive ? 0 : failures + 1;
      if (!alive) this.probeFailures.liveness++;
      if (!alive) this.log.warn({ failures, of: this.cfg.livenessFailures }, 'backend liveness probe failed');
      if (failures >= this.cfg.livenessFailures) {
        this.log.error('backend hung: restarting it');
        await this.restartGroup(gen, 'hung', 'hang');
        return;
      }
      this.later(this.cfg.livenessIntervalMs, () => void probe());
    };
    this.later(this.cfg.livenessIntervalMs, () => void probe());
  }

  /** Stops the group ourselves (hang, startup timeout), then restarts with back-off. */
  private async restartGroup(gen: number, reason: string, kind: RestartReason): Promise<void> {
    if (gen !== this.generation) return;
    this.downKind = kind;
    const child = this.child;
    const own = ++this.generation;
    // nothing may route to it during the stop grace (its requests can be retried elsewhere now)
    this.goingDown(reason);
    if (child?.pid !== undefined) await stopGroup(child.pid, this.cfg.stopGraceMs);
    if (child) this.release(child);
    if (own !== this.generation) return;
    this.child = undefined;
    this.pid = undefined;
    this.spawnedAt = undefined;
    this.failed(reason);
  }

  /** From the moment the backend is known to be down: not ready, and the hooks hear it (once). */
  private goingDown(reason: string): void {
    this.state = 'stopping';
    this.lastDownReason = reason;
    this.notReadyReason = null;
    if (this.downNotified) return;
    this.downNotified = true;
    this.hooks.onDown(reason);
  }

  /** The backend is down (and its group gone): schedule the next start, or give up. */
  private failed(reason: string): void {
    const wasReady = this.readySince !== undefined;
    this.goingDown(reason);
    if (this.readySince !== undefined && Date.now() - this.readySince >= STABLE_AFTER_MS) this.consecutiveFailures = 0;
    this.readySince = undefined;
    if (this.restartCount >= this.cfg.maxRestarts) {
      this.state = 'failed';
      this.log.error({ restarts: this.restartCount, reason }, 'maximum restart limit reached: backend failed');
      return;
    }
    this.consecutiveFailures++;
    const delay = Math.min(this.cfg.maxRestartDelayMs, this.cfg.restartDelayMs * 2 ** Math.min(this.consecutiveFailures - 1, 30));
    this.state = 'backoff';
    this.nextStartAt = Date.now() + delay;
    this.log.warn({ reason, was_ready: wasReady, delay_s: delay / 1000, restart: this.restartCount + 1 }, 'restarting backend after delay');
    const gen = this.generation;
    const kind = this.downKind;
    this.later(delay, () => {
      if (gen !== this.generation || this.state !== 'backoff') return;
      this.restartCount++;
      this.restartsByReason.set(kind, (this.restartsByReason.get(kind) ?? 0) + 1);
      void this.launch();
    });
  }

  /** Stops supervising and the whole backend group; resolves when no process of it is left. */
  async stop(): Promise<void> {
    this.generation++;
    this.clearTimers();
    this.state = 'stopping';
    const child = this.child;
    const pid = child?.pid;
    if (child && pid !== undefined) {
      const reaped = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));
      const how = await stopGroup(pid, this.cfg.stopGraceMs);
      // wait (briefly) until our direct child is reaped, so no zombie outlives the babysitter
      await Promise.race([reaped, new Promise((r) => setTimeout(r, 1000))]);
      this.release(child);
      this.log.info({ backend_pid: pid, how }, 'backend stopped');
    }
    this.child = undefined;
    this.pid = undefined;
    this.spawnedAt = undefined;
    this.state = 'stopped';
  }
}
