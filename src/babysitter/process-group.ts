import { readdirSync, readFileSync } from 'node:fs';

/** The fields of /proc/<pid>/stat this package needs. */
export interface ProcStat {
  pid: number;
  /** The program name (up to 15 characters), for messages. */
  comm: string;
  /** One letter: R, S, D, Z (zombie), T ... */
  state: string;
  ppid: number;
  pgrp: number;
  /** Start time in clock ticks since boot: with the pid, it names one process for good. */
  startTicks: number;
}

/** Parses a /proc/<pid>/stat line; comm may hold spaces and parentheses, so fields start after the last ')'. */
export function parseProcStat(pid: number, text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open === -1 || close < open) return undefined;
  // after "pid (comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice num_threads itrealvalue starttime (field 22 overall)
  const f = text.slice(close + 2).split(' ');
  const startTicks = Number(f[19]);
  if (f.length < 20 || !Number.isFinite(startTicks)) return undefined;
  return { pid, comm: text.slice(open + 1, close), state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), startTicks };
}

/** One process's stat, undefined if it is gone or /proc is unavailable. */
export function procStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(pid, readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return undefined;
  }
}

/** Every live (non-zombie) process visible in /proc; undefined where /proc is unavailable. */
export function allProcesses(): ProcStat[] | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const out: ProcStat[] = [];
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    // the process may go away while we look: then it is simply not listed
    const s = procStat(Number(e));
    if (s && s.state !== 'Z') out.push(s);
  }
  return out;
}

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
