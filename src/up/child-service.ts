import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import { NODE_FLAGS } from '../common/node-flags.js';
import { PARENT_FD_ENV } from '../common/parent-watch.js';
import { PACKAGE_ROOT } from '../common/version.js';
import type { UpConsole } from './console.js';

export const CLI_PATH = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');

/**
 * One service of the cluster: `node <cli> <command> ...` in its own process group (so the
 * terminal's Ctrl-C reaches only `up`, which stops the services in order), its output appended to
 * a log file. Once the cluster runs, an unexpected exit restarts it with back-off.
 *
 * Each child also gets a pipe on descriptor 3 that `up` never writes to (PARENT_FD_ENV names it):
 * when `up` dies, even by SIGKILL, the child reads end-of-file and stops gracefully by itself
 * (src/common/parent-watch.ts), a babysitter taking its engine with it.
 */
export class ChildService {
  proc: ChildProcess | undefined;
  restarts = 0;
  private stopping = false;
  private supervising = false;
  private exited: Promise<void> = Promise.resolve();
  private restartTimer: NodeJS.Timeout | undefined;
  /** Called when the process exits while not being stopped (start-up failures are fatal to `up`). */
  onUnexpectedExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined;

  constructor(
    readonly name: string,
    readonly kind: 'registry' | 'router' | 'babysitter',
    readonly args: string[],
    readonly logPath: string,
    private readonly log: Logger,
    private readonly out: UpConsole,
  ) {}

  start(): void {
    if (this.stopping) return;
    const fd = openSync(this.logPath, 'a');
    try {
      this.proc = spawn(process.execPath, [...NODE_FLAGS, CLI_PATH, ...this.args], {
        detached: true,
        stdio: ['ignore', fd, fd, 'pipe'],
        env: { ...process.env, [PARENT_FD_ENV]: '3' },
      });
    } finally {
      closeSync(fd);
    }
    const proc = this.proc;
    // our end of the watch pipe: held open, never written; it must not keep `up` alive by itself
    const watchEnd = proc.stdio[3] as Socket | null | undefined;
    watchEnd?.on('error', () => undefined);
    watchEnd?.unref();
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        resolve();
        if (this.stopping) return;
        this.onUnexpectedExit?.(code, signal);
        if (this.supervising) this.scheduleRestart(code, signal);
      });
    });
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** From now on an unexpected exit restarts the service (1 s, doubling to 30 s). */
  supervise(): void {
    this.supervising = true;
  }

  private scheduleRestart(code: number | null, signal: NodeJS.Signals | null): void {
    const delay = Math.min(30_000, 1000 * 2 ** Math.min(this.restarts, 5));
    // the console line below says it to the operator; the JSON line would say it twice
    this.log.debug({ service: this.name, code, signal, restart_in_s: delay / 1000, log: this.logPath }, 'service exited unexpectedly; restarting it');
    const last = this.lastLogLine();
    this.out.say(this.name, `${this.kind === this.name ? '' : `${this.kind} `}exited unexpectedly (${signal ?? `exit ${code}`}); restarting it in ${delay / 1000} s (log: ${this.logPath})`, last ? [last] : []);
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.restarts++;
      this.start();
    }, delay);
  }

  /** The last non-empty line of its log (read from its last 16 KiB): usually why it stopped. */
  lastLogLine(): string {
    let fd: number | undefined;
    try {
      fd = openSync(this.logPath, 'r');
      const size = fstatSync(fd).size;
      const tail = Buffer.alloc(Math.min(size, 16 * 1024));
      readSync(fd, tail, 0, tail.length, size - tail.length);
      const lines = tail.toString('utf8').trim().split('\n');
      return lines[lines.length - 1] ?? '';
    } catch {
      return '';
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  private signal(sig: NodeJS.Signals): void {
    if (this.proc?.pid === undefined) return;
    try {
      process.kill(-this.proc.pid, sig);
    } catch {
      // group already gone
    }
  }

  /** SIGTERM to its group; SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    if (!this.running) return;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Immediate SIGKILL of its group (second Ctrl-C). */
  kill(): void {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.signal('SIGKILL');
  }
}
