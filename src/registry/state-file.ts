import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../common/log.js';
import { UsageError } from '../common/command.js';
import { rfc3339 } from '../common/time.js';
import { validateRegistration, type ServiceRecord } from './record.js';
import { encodeEntry, parseJournal, savedRecord, type JournalEntry, type SavedRecord } from './state-journal.js';

export interface StateSnapshot {
  index: number;
  services: ServiceRecord[];
}

/** What was written since start, for /stats. */
export interface StateFileCounters {
  writes: number;
  bytes_written: number;
  compactions: number;
}

/** The journal is compacted once it is larger than the snapshot and at least this large. */
export const COMPACT_MIN_BYTES = 1024 * 1024;
/** Records serialised per step of a snapshot write (the event loop runs between steps). */
const SNAPSHOT_CHUNK = 1000;

/** Writes all of `buf` (a write may take less than asked). */
async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
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
 * The registry's state on disk: a snapshot (`<state>`, one JSON document, the format of earlier
 * versions) plus a journal (`<state>.journal`, one JSON line per commit group with its net changes).
 *
 * - A commit appends one line and fdatasyncs it: a change costs its own size, not the state's.
 * - When the journal outgrows the snapshot (and COMPACT_MIN_BYTES), it is renamed to
 *   `<state>.journal.<index>` (appends go on in a fresh journal) and a new snapshot of the state at
 *   that index is written in the background: temporary file, fsync, rename, directory fsync; then
 *   rotated journals up to that index are removed. Over a burst the snapshots double in size, so
 *   all bytes written stay within a few times the final state.
 * - Loading reads the snapshot, then replays rotated journals and the journal, skipping lines the
 *   snapshot already holds (by index), so a crash between any two steps loads the same state.
 *   An unterminated last line is a write cut short: never acknowledged, dropped with a warning.
 * - Start-up and a clean stop compact everything into the snapshot, so a stopped registry leaves
 *   one plain JSON file, readable by earlier versions.
 *
 * Calls are the caller's to order: appends and rotations one at a time (the store's group commit),
 * at most one compaction running.
 */
export class StateFile {
  readonly counters: StateFileCounters = { writes: 0, bytes_written: 0, compactions: 0 };
  /** Told the duration (seconds) of every finished write, journal append or snapshot (metrics). */
  onWrite: ((seconds: number) => void) | undefined;
  /** Bytes appended to journals since start (part of counters.bytes_written). */
  appendedBytes = 0;
  private journal: FileHandle | undefined;
  /** Bytes of complete lines in the journal; a failed append is cut back to this. */
  private journalBytes = 0;
  private journalDirty = false;
  private snapshotBytes = 0;
  /** Index of the last line appended (or loaded). */
  private lastIndex = 0;
  /** Bytes of complete lines in the journal found at start, when it was not compacted away. */
  private activeValidBytes: number | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
    /** The journal's least size for a compaction (tests use small ones). */
    private readonly compactMinBytes = COMPACT_MIN_BYTES,
  ) {}

  get journalPath(): string {
    return `${this.path}.journal`;
  }

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

  /**
   * Loads the state (read()), then compacts, if there were journals, so this run starts from one
   * snapshot and an empty journal.
   */
  async load(nowMs: number, livenessNowMs: number = nowMs): Promise<StateSnapshot> {
    const { state, journals } = await this.readState(nowMs, livenessNowMs);
    if (journals > 0) {
      try {
        await this.compact(state.index, state.services, { removeJournal: true });
        this.activeValidBytes = undefined;
      } catch (err) {
        // Not fatal: the journals stay and are replayed next time; appends go on after the
        // journal's last complete line (openJournal cuts a torn tail first).
        this.log.warn({ err: (err as Error).message }, 'could not compact the state journal at start; it is kept and replayed at the next start');
      }
    }
    return state;
  }

  /**
   * Reads the snapshot and replays the journals, writing nothing; a missing file is an empty
   * state, an unreadable one stops start-up with one line.
   */
  async read(nowMs: number, livenessNowMs: number = nowMs): Promise<StateSnapshot> {
    return (await this.readState(nowMs, livenessNowMs)).state;
  }

  private async readState(nowMs: number, livenessNowMs: number): Promise<{ state: StateSnapshot; journals: number }> {
    const snapshot = await this.readSnapshot();
    const records = new Map<string, SavedRecord>();
    for (const [i, raw] of snapshot.services.entries()) {
      const rec = this.checked(raw, `entry ${i}`, this.path);
      if (rec) records.set(rec.name, rec);
    }
    let index = snapshot.index;
    const journals = await this.journalFiles();
    for (const file of journals) index = await this.replay(file, index, records);
    this.lastIndex = index;
    // Reloaded services count as heard from now, so their next heartbeats keep them (no false eviction).
    const services: ServiceRecord[] = [...records.values()].map((r) => ({
      ...r,
      timestamp: typeof r.timestamp === 'string' ? r.timestamp : rfc3339(nowMs),
      health_status: typeof r.health_status === 'string' ? r.health_status : 'unknown',
      lastHeartbeatMs: nowMs,
      heardAtMs: livenessNowMs,
    }));
    return { state: { index, services }, journals: journals.length };
  }

  /** Appends one commit group's changes and returns once they are on disk; throws StateWriteError. */
  async append(entry: JournalEntry): Promise<void> {
    const line = Buffer.from(encodeEntry(entry));
    const started = performance.now();
    try {
      const fh = await this.openJournal();
      // A failed append may have left part of a line: cut it off before the next one.
      if (this.journalDirty) await fh.truncate(this.journalBytes);
      this.journalDirty = true;
      await writeAll(fh, line);
      await fh.datasync();
      this.journalDirty = false;
    } catch (err) {
      throw new StateWriteError(this.journalPath, err);
    }
    this.journalBytes += line.length;
    this.lastIndex = entry.index;
    this.counters.writes++;
    this.counters.bytes_written += line.length;
    this.appendedBytes += line.length;
    this.onWrite?.((performance.now() - started) / 1000);
  }

  /** Whether the journal has outgrown the snapshot, so rewriting the snapshot is worth its bytes. */
  get wantsCompaction(): boolean {
    return this.journalBytes > Math.max(this.snapshotBytes, this.compactMinBytes);
  }

  /** Whether anything was appended since the last compaction. */
  get hasJournal(): boolean {
    return this.journalBytes > 0 || this.journal !== undefined;
  }

  /**
   * Moves the journal aside as `<state>.journal.<index>`, so appends go on in a fresh one while a
   * snapshot of the state at `index` (the returned value) is written. Call between appends.
   */
  async rotate(): Promise<number> {
    const index = this.lastIndex;
    if (!this.journal) return index;
    // Nothing acknowledged in it (every append failed): drop it rather than take the name
    // `.journal.<index>` of a rotated journal that may still be waiting for its snapshot.
    if (this.journalBytes === 0) await unlink(this.journalPath);
    // The rename reaches the disk with the directory fsync of the next journal's creation.
    else await rename(this.journalPath, `${this.journalPath}.${index}`);
    const fh = this.journal;
    this.journal = undefined;
    this.journalBytes = 0;
    this.journalDirty = false;
    await fh.close().catch(() => undefined);
    return index;
  }

  /**
   * Writes a snapshot of `services` at `index` (temporary file, fsync, rename, directory fsync),
   * then removes rotated journals up to `index` (and the journal too with `removeJournal`, only
   * when nothing was appended since `index`, i.e. at start or after a final rotation).
   */
  async compact(index: number, services: ServiceRecord[], opts: { removeJournal?: boolean } = {}): Promise<void> {
    const tmp = this.tempPath;
    const dir = dirname(this.path);
    let bytes = 0;
    const started = performance.now();
    await mkdir(dir, { recursive: true });
    try {
      const fh = await open(tmp, 'w');
      try {
        const put = async (text: string) => {
          const buf = Buffer.from(text);
          await writeAll(fh, buf);
          bytes += buf.length;
        };
        await put(`{"version":1,"index":${index},"saved_at":${JSON.stringify(new Date().toISOString())},"services":[`);
        for (let i = 0; i < services.length; i += SNAPSHOT_CHUNK) {
          const chunk = services.slice(i, i + SNAPSHOT_CHUNK).map((r) => JSON.stringify(savedRecord(r)));
          await put(`${i === 0 ? '\n' : ',\n'}${chunk.join(',\n')}`);
        }
        await put('\n]}\n');
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new StateWriteError(this.path, err);
    }
    // The rename is durable only once the directory entry is on disk too (power loss, not kill -9).
    await this.syncDir();
    this.snapshotBytes = bytes;
    this.counters.writes++;
    this.counters.bytes_written += bytes;
    this.counters.compactions++;
    this.onWrite?.((performance.now() - started) / 1000);
    for (const file of await this.journalFiles()) {
      const rotatedAt = Number(file.slice(this.journalPath.length + 1));
      const covered = file === this.journalPath ? opts.removeJournal === true : rotatedAt <= index;
      if (covered) await unlink(file).catch((err: Error) => this.log.warn({ file, err: err.message }, 'cannot remove a compacted journal; it is skipped at load'));
    }
  }

  /** Closes the journal (after the last append). */
  async close(): Promise<void> {
    const fh = this.journal;
    this.journal = undefined;
    await fh?.close().catch(() => undefined);
  }

  private async openJournal(): Promise<FileHandle> {
    if (this.journal) return this.journal;
    await mkdir(dirname(this.path), { recursive: true });
    const fh = await open(this.journalPath, 'a');
    try {
      const size = (await fh.stat()).size;
      // A journal left at start may end in a torn line: the first append cuts it off.
      this.journalBytes = Math.min(size, this.activeValidBytes ?? size);
      this.journalDirty = this.journalBytes < size;
      // A new file's directory entry must be on disk before anything in it is acknowledged.
      await this.syncDir();
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.activeValidBytes = undefined;
    this.journal = fh;
    return fh;
  }

  private async syncDir(): Promise<void> {
    const dh = await open(dirname(this.path), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  private async readSnapshot(): Promise<{ index: number; services: unknown[] }> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { index: 0, services: [] };
      throw new UsageError(`state file ${this.path}: cannot read: ${(err as Error).message}`);
    }
    let data: { index?: unknown; services?: unknown };
    try {
      data = JSON.parse(text) as typeof data;
    } catch (err) {
      throw new UsageError(`state file ${this.path}: invalid JSON (${(err as Error).message}); fix or remove it, or run with --no-persist`);
    }
    if (typeof data !== 'object' || data === null || !Array.isArray(data.services)) {
      throw new UsageError(`state file ${this.path}: key 'services': expected an array; fix or remove the file, or run with --no-persist`);
    }
    this.snapshotBytes = Buffer.byteLength(text);
    const index = Number.isSafeInteger(data.index) && (data.index as number) >= 0 ? (data.index as number) : 0;
    return { index, services: data.services };
  }

  /** Rotated journals in index order, then the journal: the order their lines were written. */
  private async journalFiles(): Promise<string[]> {
    const prefix = `${basename(this.journalPath)}.`;
    let names: string[];
    try {
      names = await readdir(dirname(this.path));
    } catch {
      return [];
    }
    const rotated = names
      .filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
      .map((n) => Number(n.slice(prefix.length)))
      .sort((a, b) => a - b)
      .map((i) => `${this.journalPath}.${i}`);
    return names.includes(basename(this.journalPath)) ? [...rotated, this.journalPath] : rotated;
  }

  /** Applies the lines of one journal after `index` to `records`; returns the new index. */
  private async replay(file: string, index: number, records: Map<string, SavedRecord>): Promise<number> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new UsageError(`state journal ${file}: cannot read: ${(err as Error).message}`);
    }
    const { entries, tornBytes, badLine } = parseJournal(text);
    if (badLine !== undefined) {
      throw new UsageError(`state journal ${file}: line ${badLine} is not a journal entry; fix or remove the file (losing the changes in it), or run with --no-persist`);
    }
    if (tornBytes > 0) this.log.warn({ file, bytes: tornBytes }, 'dropped an incomplete last line of the state journal (a write cut short, never acknowledged)');
    if (file === this.journalPath) this.activeValidBytes = Buffer.byteLength(text) - tornBytes;
    for (const entry of entries) {
      if (entry.index <= index) continue;
      index = entry.index;
      for (const name of entry.delete ?? []) records.delete(name);
      for (const raw of entry.put ?? []) {
        const rec = this.checked(raw, `index ${entry.index}`, file);
        if (rec) records.set(rec.name, rec);
      }
      for (const fields of entry.set ?? []) {
        const old = records.get(fields?.name);
        if (!old) {
          this.log.warn({ file, index: entry.index, service: fields?.name }, 'skipping a change to an unknown record in the state journal');
          continue;
        }
        const rec = this.checked({ ...old, ...fields }, `index ${entry.index}`, file);
        if (rec) records.set(rec.name, rec);
      }
    }
    return index;
  }

  /** A saved record as loaded, or undefined (logged) when it is not a valid registration. */
  private checked(raw: unknown, where: string, file: string): SavedRecord | undefined {
    const checked = validateRegistration(raw);
    if (!checked.ok) {
      this.log.warn({ file, entry: where, problem: checked.error }, 'skipping invalid record in state file');
      return undefined;
    }
    const r = raw as Partial<SavedRecord>;
    const rec = { ...checked.value, timestamp: r.timestamp as string, health_status: r.health_status as string };
    return rec;
  }
}
