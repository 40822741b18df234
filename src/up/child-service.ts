import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import { NODE_FLAGS } from '../common/node-flags.js';
import { PACKAGE_ROOT } from '../common/version.js';

export const CLI_PATH = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');

/**
 * One service of the cluster: `node <cli> <command> ...` in its own process group, its output
 * appended to a log file. Once the cluster runs, an unexpected exit restarts it with back-off.
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
  ) {}

  start(): void {
    const fd = openSync(this.logPath, 'a');
    try {
      this.proc = spawn(process.execPath, [...NODE_FLAGS, CLI_PATH, ...this.args], { detached: true, stdio: ['ignore', fd, fd], env: process.env });
    } finally {
      closeSync(fd);
    }
    const proc = this.proc;
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
    this.log.warn({ service: this.name, code, signal, restart_in_s: delay / 1000, log: this.logPath }, 'service exited unexpectedly; restarting it');
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.restarts++;
      this.start();
    }, delay);
  }

  /** The last non-empty line of its log: usually why it stopped. */
  lastLogLine(): string {
    try {
      const lines = readFileSync(this.logPath, 'utf8').trim().split('\n');
      return lines[lines.length - 1] ?? '';
    } catch {
      return '';
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
