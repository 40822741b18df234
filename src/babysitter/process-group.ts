import { readdirSync } from 'node:fs';
import { processes, type ProcStat } from '../common/proc-stat.js';

/**
 * Whether a process still runs. A zombie has finished, except the leader of a multi-threaded
 * process (a Node, Python or C++ engine): it reads as a zombie once its own thread has exited
 * (SIGKILL ends the threads one by one, later under CPU load), while the others still run and the
 * process still holds its files, the listening socket among them, until the last thread is gone.
 * /proc/<pid>/task lists that thread while it lasts.
 */
function running(p: ProcStat): boolean {
  if (p.state !== 'Z') return true;
  try {
    return readdirSync(`/proc/${p.pid}/task`).length > 1;
  } catch {
    return false; // reaped meanwhile
  }
}

/** Running members of a process group (see running), from /proc; undefined where /proc is unavailable. */
export function groupProcesses(pgid: number): ProcStat[] | undefined {
  return processes((p) => p.pgrp === pgid && running(p));
}

/** Whether any process of the group is still running (see running). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  const members = groupProcesses(pgid);
  return members === undefined ? true : members.length > 0;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

async function waitGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/**
 * Stops a whole process group: SIGTERM, up to `graceMs` for it to exit, then SIGKILL, and waits
 * until no process of the group is left. Returns how it ended.
 */
export async function stopGroup(pgid: number, graceMs: number): Promise<'terminated' | 'killed' | 'lingering'> {
  if (!groupAlive(pgid)) return 'terminated';
  signalGroup(pgid, 'SIGTERM');
  if (await waitGone(pgid, graceMs)) return 'terminated';
  signalGroup(pgid, 'SIGKILL');
  return (await waitGone(pgid, 5000)) ? 'killed' : 'lingering';
}
