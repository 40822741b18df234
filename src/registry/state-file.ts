import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
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
  services: Array<Omit<ServiceRecord, 'lastHeartbeatMs'> & { last_heartbeat: number }>;
}

/**
 * The registry's state on disk: one JSON file, replaced atomically (write a temporary file, fsync,
 * rename) and debounced, so bursts of registrations cost one write and a crash mid-write never
 * leaves a truncated file.
 */
export class StateFile {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private snapshot: (() => StateSnapshot) | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly debounceMs = 50,
  ) {}

  /** Loads records; a missing file is an empty state, an unreadable one stops start-up with one line. */
  async load(nowMs: number): Promise<StateSnapshot> {
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
      });
    }
    const index = Number.isSafeInteger(data.index) && (data.index as number) >= 0 ? (data.index as number) : 0;
    return { index, services };
  }

  /** Schedules a save of whatever `snapshot()` returns when the debounce fires. */
  schedule(snapshot: () => StateSnapshot): void {
    this.snapshot = snapshot;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.writeNow();
    }, this.debounceMs);
    this.timer.unref();
  }

  /** Writes any pending change now and waits for it (used at shutdown). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.writeNow();
    }
    await this.writing;
  }

  private writeNow(): Promise<void> {
    const take = this.snapshot;
    this.snapshot = undefined;
    if (!take) return this.writing;
    this.writing = this.writing.then(() => this.write(take())).catch((err: unknown) => {
      this.log.error({ err, file: this.path }, 'failed to save registry state; will retry on the next change');
    });
    return this.writing;
  }

  private async write(state: StateSnapshot): Promise<void> {
    const body: StateFileShape = {
      version: 1,
      index: state.index,
      saved_at: new Date().toISOString(),
      services: state.services.map(({ lastHeartbeatMs, ...rest }) => ({ ...rest, last_heartbeat: lastHeartbeatMs / 1000 })),
    };
    const tmp = `${this.path}.${process.pid}.tmp`;
    await mkdir(dirname(this.path), { recursive: true });
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(body, null, 1));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }
}
