/**
 * Who listens on a TCP port, from /proc: /proc/net/tcp{,6} give the inode of each listening
 * socket, /proc/<pid>/fd links ("socket:[inode]") give the processes holding it. This is how the
 * babysitter refuses to start a backend on a port somebody else holds, and refuses to call ready a
 * backend whose probe was answered by somebody else. Without /proc it falls back to a connect test
 * (in use or not, owner unknown) and trusts the probe.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { allProcesses, type ProcStat } from '../common/proc-stat.js';

const LISTEN = '0A';

/** Inodes of the sockets listening on `port` in a /proc/net/tcp or tcp6 table. */
export function parseListeners(table: string, port: number): number[] {
  const inodes: number[] = [];
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== LISTEN) continue;
    const local = f[1]!;
    if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) !== port) continue;
    const inode = Number(f[9]);
    if (inode > 0) inodes.push(inode);
  }
  return inodes;
}

/** Listening socket inodes on `port` (IPv4 and IPv6); undefined where /proc/net is unavailable. */
export function listeningInodes(port: number): number[] | undefined {
  let readable = false;
  const inodes: number[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      inodes.push(...parseListeners(readFileSync(file, 'latin1'), port));
      readable = true;
    } catch {
      // no IPv6, or no /proc
    }
  }
  return readable ? inodes : undefined;
}

/** Whether the process holds one of the sockets; undefined when its fds cannot be read. */
function holds(pid: number, inodes: Set<string>): boolean | undefined {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? false : undefined;
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith('socket:[') && inodes.has(link.slice(8, -1))) return true;
    } catch {
      // closed while we looked
    }
  }
  return false;
}

/** The first process (lowest pid) holding one of the sockets, if any is visible to us. */
function holderAmong(procs: ProcStat[], inodes: Set<string>): ProcStat | undefined {
  for (const p of procs) if (holds(p.pid, inodes)) return p;
  return undefined;
}

/** "pid 1234 (python3)" */
export function describeProcess(p: { pid: number; comm?: string }): string {
  return p.comm ? `pid ${p.pid} (${p.comm})` : `pid ${p.pid}`;
}

export type PortUse = { inUse: false } | { inUse: true; holder?: ProcStat };

/** Whether anything listens on `port` now, and which process when /proc tells. */
export async function portInUse(port: number): Promise<PortUse> {
  const inodes = listeningInodes(port);
  if (inodes === undefined) return (await connects(port)) ? { inUse: true } : { inUse: false };
  if (inodes.length === 0) return { inUse: false };
  const holder = holderAmong(allProcesses() ?? [], new Set(inodes.map(String)));
  return holder === undefined ? { inUse: true } : { inUse: true, holder };
}

/** Fallback without /proc: something accepts a connection on 127.0.0.1:port. */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export type Ownership = { owner: 'ours' } | { owner: 'other' | 'later'; holder: ProcStat } | { owner: 'unknown' };

/**
 * Whose is the listener on `port`: 'ours' when a process of our backend's group (`pgid`) or a
 * descendant of its leader holds it (a backend may move workers to a session of their own);
 * 'other' when the holder is outside and started before our backend (an orphan of an earlier
 * babysitter, a squatter: never our backend's doing); 'later' when it is outside but started after
 * our backend, which our backend may well have caused (`docker run -p` makes docker-proxy listen,
 * a container's processes are children of the container runtime): trusted, as before. 'unknown'
 * when /proc cannot tell (no /proc, no listener in this network namespace, holder not visible to
 * us, or our processes' fds unreadable): the probe is trusted as before.
 */
export function portOwnership(port: number, pgid: number): Ownership {
  const inodes = listeningInodes(port);
  const procs = allProcesses();
  if (!inodes || inodes.length === 0 || !procs) return { owner: 'unknown' };
  const wanted = new Set(inodes.map(String));
  const ours = ourProcesses(procs, pgid);
  const leader = ours.find((p) => p.pid === pgid);
  let unreadable = false;
  for (const p of ours) {
    const h = holds(p.pid, wanted);
    if (h) return { owner: 'ours' };
    if (h === undefined) unreadable = true;
  }
  if (unreadable || !leader) return { owner: 'unknown' };
  const mine = new Set(ours.map((p) => p.pid));
  const holder = holderAmong(procs.filter((p) => !mine.has(p.pid)), wanted);
  if (!holder) return { owner: 'unknown' };
  return { owner: holder.startTicks < leader.startTicks ? 'other' : 'later', holder };
}

/** The group's members and every descendant of its leader. */
export function ourProcesses(procs: ProcStat[], pgid: number): ProcStat[] {
  const ours = new Set<number>();
  for (const p of procs) if (p.pgrp === pgid || p.pid === pgid) ours.add(p.pid);
  // descendants: repeat until no new child of a known process appears (the tree is shallow)
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) {
      if (!ours.has(p.pid) && ours.has(p.ppid)) {
        ours.add(p.pid);
        grew = true;
      }
    }
  }
  return procs.filter((p) => ours.has(p.pid));
}
