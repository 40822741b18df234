/**
 * The pid file of the backend group, one per backend port and user: a safeguard next to the
 * group watch. At start a babysitter reads it and stops a group a previous babysitter on this port
 * left running (e.g. one that ignores SIGTERM and is still inside the watcher's grace). Identity is
 * the pid plus the process start time from /proc/<pid>/stat, so a reused pid is never signalled.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import { procStat } from '../common/proc-stat.js';
import { groupProcesses, stopGroup } from './process-group.js';

export interface GroupRecord {
  /** Leader pid = process group id of the backend group. */
  pgid: number;
  /** Leader start time (clock ticks since boot). */
  start: number;
  /** The babysitter that owns the group, and its start time. */
  babysitter: number;
  babysitter_start: number;
  port: number;
  program: string;
}

function uid(): string {
  try {
    return String(userInfo().uid);
  } catch {
    return 'user';
  }
}

/** `$TMPDIR/infini-babysitter-<uid>-<port>.pid` (per user: /tmp is shared and sticky). */
export function pidFilePath(port: number): string {
  return join(tmpdir(), `infini-babysitter-${uid()}-${port}.pid`);
}

export function readGroupRecord(file: string): GroupRecord | 'missing' | 'invalid' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return 'missing';
  }
  try {
    const r = JSON.parse(text) as GroupRecord;
    const ints = [r.pgid, r.start, r.babysitter, r.babysitter_start, r.port];
    if (ints.every((n) => Number.isSafeInteger(n) && n >= 0) && r.pgid > 1) return r;
  } catch {
    // fall through
  }
  return 'invalid';
}

/** Records a freshly started group (written whole, then renamed into place). */
export function writeGroupRecord(file: string, pgid: number, port: number, program: string, log: Logger): void {
  const leader = procStat(pgid);
  const me = procStat(process.pid);
  if (!leader || !me) return; // no /proc: identity could never be verified, so no file
  const rec: GroupRecord = { pgid, start: leader.startTicks, babysitter: process.pid, babysitter_start: me.startTicks, port, program };
  try {
    writeFileSync(`${file}.tmp`, `${JSON.stringify(rec)}\n`);
    renameSync(`${file}.tmp`, file);
  } catch (err) {
    log.warn({ file, err: (err as Error).message }, 'cannot write the backend pid file');
  }
}

export function removeGroupRecord(file: string): void {
  for (const f of [file, `${file}.tmp`]) {
    try {
      unlinkSync(f);
    } catch {
      // already gone
    }
  }
}

/** Whether `pid` is the running process that started at `start` (a reused pid has another start time). */
function same(pid: number, start: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== 'Z' && s.startTicks === start;
}

/**
 * Stops the group a previous babysitter on this port left running, if the pid file names one that
 * still runs: SIGTERM, grace, SIGKILL. A group whose babysitter still runs is left alone (that
 * babysitter supervises it; our port check then reports the port in use).
 */
export async function stopPreviousGroup(file: string, graceMs: number, log: Logger): Promise<void> {
  const rec = readGroupRecord(file);
  if (rec === 'missing') return;
  if (rec === 'invalid') {
    log.warn({ file }, 'ignoring an unreadable backend pid file');
    removeGroupRecord(file);
    return;
  }
  if (rec.babysitter !== process.pid && same(rec.babysitter, rec.babysitter_start)) {
    log.warn({ file, babysitter_pid: rec.babysitter, backend_pid: rec.pgid }, 'the backend group on this port belongs to a running babysitter; leaving it alone');
    return;
  }
  // The leader itself, or (leader gone) members of its group that started after it: its workers.
  // A live process with the leader's pid but another start time means the id was reused: not ours.
  const leader = procStat(rec.pgid);
  const reused = leader !== undefined && leader.startTicks !== rec.start;
  const members = reused ? [] : (groupProcesses(rec.pgid) ?? []).filter((p) => p.startTicks >= rec.start).map((p) => p.pid);
  if (members.length > 0) {
    log.warn({ backend_pid: rec.pgid, members, previous_babysitter: rec.babysitter, program: rec.program }, 'stopping the backend group a previous babysitter left running');
    const how = await stopGroup(rec.pgid, graceMs);
    log.info({ backend_pid: rec.pgid, how }, 'previous backend group stopped');
  }
  removeGroupRecord(file);
}
