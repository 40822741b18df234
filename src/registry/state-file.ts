import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../common/log.js';
import { UsageError } from '../common/command.js';
import { rfc3339 } from '../common/time.js';
import { validateRegistration, type ServiceRecord } from './record.js';

export interface StateSnapshot {
  index: number;
  services: ServiceRecord[];
}

interface StateFileShape {
  version: 1;
  index: number;
  saved_at: string;
  services: Array<Omit<ServiceRecord, 'lastHeartbeatMs' | 'heardAtMs'> & { last_heartbeat: number }>;
}

/** A save that did not reach the disk: the change it carried must not be acknowledged. */
export class StateWriteError extends Error {
  readonly code: string;
  constructor(path: string, cause: unknown) {
    const err = cause as NodeJS.ErrnoException;
    super(`cannot save state file ${path}: ${err?.message ?? String(cause)}`, { cause });
    this.code = err?.code ?? 'EIO';
  }
}

/**
 * The registry's state on disk: one JSON file, replaced atomically (write a temporary file next to
 * it, fsync, rename, fsync the directory), so a crash at any point leaves either the old or the new
 * file, never a truncated one. Writes are the caller's to order (one at a time); the store groups
 * changes so that one write carries every change made while the previous write ran.
 */
export class StateFile {
  constructor(
    readonly path: string,
    private readonly log: Logger,
  ) {}

  /** `<state>.<pid>.tmp`: unique per process, recognisable as this file's leftover after a crash. */
  private get tempPath(): string {
    return `${this.path}.${process.pid}.tmp`;
  }

  /**
   * Removes temporary files of this state file left by a write that never reached its rename (a
   * kill mid-write). A finished write renames its temporary file away, so anything left is garbage.
   * Run once at start, before any write of this process.
   */
  async removeStaleTemps(): Promise<string[]> {
    const dir = dirname(this.path);
    const prefix = `${basename(this.path)}.`;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    const removed: string[] = [];
    for (const name of names) {
      if (!name.startsWith(prefix) || !/^\d+\.tmp$/.test(name.slice(prefix.length))) continue;
      try {
        await unlink(join(dir, name));
        removed.push(name);
      } catch (err) {
        this.log.warn({ file: join(dir, name), err: (err as Error).message }, 'cannot remove leftover temporary state file');
      }
    }
    if (removed.length) this.log.warn({ dir, files: removed }, 'removed temporary state files left by an interrupted write');
    return removed;
  }

  /** Loads records; a missing file is an empty state, an unreadable one stops start-up with one line. */
  async load(nowMs: number, livenessNowMs: number = nowMs): Promise<StateSnapshot> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { index: 0, services: [] };
      throw new UsageError(`state file ${this.path}: cannot read: ${(err as Error).message}`);
    }
    let data: Partial<StateFileShape>;
    try {
      data = JSON.parse(text) as Partial<StateFileShape>;
    } catch (err) {
      throw new UsageError(`state file ${this.path}: invalid JSON (${(err as Error).message}); fix or remove it, or run with --no-persist`);
    }
    if (typeof data !== 'object' || data === null || !Array.isArray(data.services)) {
      throw new UsageError(`state file ${this.path}: key 'services': expected an array; fix or remove the file, or run with --no-persist`);
    }
    const services: ServiceRecord[] = [];
    for (const [i, raw] of data.services.entries()) {
      const checked = validateRegistration(raw);
      if (!checked.ok) {
        this.log.warn({ file: this.path, entry: i, problem: checked.error }, 'skipping invalid record in state file');
        continue;
      }
      const r = raw as Partial<StateFileShape['services'][number]>;
      // Reloaded services count as heard from now, so their next heartbeats keep them (no false eviction).
      services.push({
        ...checked.value,
        timestamp: typeof r.timestamp === 'string' ? r.timestamp : rfc3339(nowMs),
        health_status: typeof r.health_status === 'string' ? r.health_status : 'unknown',
        lastHeartbeatMs: nowMs,
        heardAtMs: livenessNowMs,
      });
    }
    const index = Number.isSafeInteger(data.index) && (data.index as number) >= 0 ? (data.index as number) : 0;
    return { index, services };
  }

  /** Replaces the file with `state` and returns once it is on disk; throws StateWriteError. */
  async write(state: StateSnapshot): Promise<void> {
    try {
      await this.replace(state);
    } catch (err) {
      throw new StateWriteError(this.path, err);
    }
  }

  private async replace(state: StateSnapshot): Promise<void> {
    const body: StateFileShape = {
      version: 1,
      index: state.index,
      saved_at: new Date().toISOString(),
      services: state.services.map(({ lastHeartbeatMs, heardAtMs: _, ...rest }) => ({ ...rest, last_heartbeat: lastHeartbeatMs / 1000 })),
    };
    // Serialised before the first await: the snapshot is exactly the state at the group's formation.
    const text = JSON.stringify(body, null, 1);
    const tmp = this.tempPath;
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true });
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(text);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    // The rename is durable only once the directory entry is on disk too (power loss, not kill -9).
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}
