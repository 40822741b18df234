import { allProcesses } from '../common/proc-stat.js';

/** Live (non-zombie) members of a process group, from /proc; undefined where /proc is unavailable. */
export function groupMembers(pgid: number): number[] | undefined {
  return allProcesses()?.filter((p) => p.pgrp === pgid).map((p) => p.pid);
}

/** Whether any process of the group is still running (zombies waiting for a reaper do not count). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  const members = groupMembers(pgid);
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
