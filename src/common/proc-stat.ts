import { readdirSync, readFileSync } from 'node:fs';

/** The fields of /proc/<pid>/stat the services, tests and benchmarks need (Linux). */
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

/** The processes visible in /proc that `keep` accepts; undefined where /proc is unavailable. */
export function processes(keep: (p: ProcStat) => boolean): ProcStat[] | undefined {
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
    if (s && keep(s)) out.push(s);
  }
  return out;
}

/** Every live (non-zombie) process visible in /proc; undefined where /proc is unavailable. */
export function allProcesses(): ProcStat[] | undefined {
  return processes((s) => s.state !== 'Z');
}
