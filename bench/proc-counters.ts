/**
 * Counters of the benchmarks from Linux's /proc: a process's reads and writes, its CPU time in
 * nanoseconds, and a socket's kernel queues.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface IoCounters {
  /** Bytes the process got from read() calls (sockets included). */
  rchar: number;
  /** Number of read() calls. */
  syscr: number;
}

/** Fields of /proc/PID/io, each a number; undefined when the file or one of them cannot be read. */
function ioFields<K extends string>(pid: number, names: readonly K[]): Record<K, number> | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/io`, 'latin1');
  } catch {
    return undefined;
  }
  const out = {} as Record<K, number>;
  for (const name of names) {
    const v = Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    if (!Number.isFinite(v)) return undefined;
    out[name] = v;
  }
  return out;
}

export function ioCounters(pid: number): IoCounters | undefined {
  return ioFields(pid, ['rchar', 'syscr'] as const);
}

export interface WriteCounters {
  /** Bytes the process caused to be sent to storage (dirtied page cache included). */
  writeBytes: number;
  /** Bytes passed to write() calls of any kind (sockets included). */
  wchar: number;
}

export function writeCounters(pid: number): WriteCounters | undefined {
  const io = ioFields(pid, ['write_bytes', 'wchar'] as const);
  return io && { writeBytes: io.write_bytes, wchar: io.wchar };
}

/**
 * CPU time of a process in nanoseconds, all its threads together (schedstat's first field per
 * thread): /proc/PID/stat counts in clock ticks (10 ms), too coarse for one-second windows.
 */
export function cpuNs(pid: number): number {
  let total = 0;
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  for (const t of tasks) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return total;
}

export interface ConnectionQueues {
  /** Bytes the client sent that the server's kernel has not acknowledged. */
  clientTx: number;
  /** Bytes the server's kernel received that the server has not read. */
  serverRx: number;
}

const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');

/**
 * The kernel queues of a loopback IPv4 connection from `clientPort` to `serverPort`, from both of
 * its ends (/proc/net/tcp lists each), or undefined when either end is gone. One read of the file:
 * the kernel writes it out for every socket of the host, so it costs milliseconds on a busy one.
 */
export function connectionQueues(clientPort: number, serverPort: number): ConnectionQueues | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/net/tcp', 'latin1');
  } catch {
    return undefined;
  }
  const [c, sv] = [hexPort(clientPort), hexPort(serverPort)];
  let clientTx: number | undefined;
  let serverRx: number | undefined;
  for (const line of text.split('\n')) {
    // "  sl  local_address rem_address   st tx_queue:rx_queue ..."
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[3] === '0A') continue; // 0A: a listening socket
    const local = f[1]!.slice(-4);
    const remote = f[2]!.slice(-4);
    const [tx, rx] = f[4]!.split(':').map((h) => parseInt(h, 16));
    if (local === c && remote === sv) clientTx = tx;
    else if (local === sv && remote === c) serverRx = rx;
  }
  return clientTx === undefined || serverRx === undefined ? undefined : { clientTx, serverRx };
}
