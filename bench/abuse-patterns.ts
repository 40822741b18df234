/**
 * The client side of `npm run bench:abuse`: each pattern sends the same bytes to whichever server it
 * is given and reads that server's cost from /proc (RSS, CPU time, read calls) and from its /stats
 * (heap). Every wait is for a condition (bytes read by the server, an answer, a stall of its reads),
 * bounded by a timeout, and memory patterns stop when the server's RSS passes a cap.
 */
import { connect, type Socket } from 'node:net';
import { alive, cpuSeconds, rssMb } from './processes.js';
import { cpuNs } from './proc-counters.js';

/**
 * CPU seconds of a process for short windows: schedstat (nanoseconds) where readable, as ticks
 * (10 ms) are too coarse for a few hundred small requests; /proc/PID/stat otherwise.
 */
function preciseCpuS(pid: number): number {
  const ns = cpuNs(pid);
  return Number.isFinite(ns) && ns > 0 ? ns / 1e9 : cpuSeconds(pid);
}
import { connectionQueues, ioCounters } from './proc-counters.js';
import { RawClient, rawGet } from './raw-client.js';
import type { Outcome } from './abuse-report.js';

/** A running server under test. */
export interface Server {
  name: string;
  port: number;
  pid: number;
}

interface Snapshot {
  rssMb: number;
  /** heapUsed + external (Buffers' memory) as the server's /stats reports them, MB. */
  heapMb: number;
  cpuS: number;
}

async function snapshot(s: Server): Promise<Snapshot> {
  const stats = await rawGet(s.port, '/stats');
  const mem = (JSON.parse(stats.body) as { memory_mb: Record<string, number> }).memory_mb;
  return { rssMb: rssMb(s.pid), heapMb: mem.heapUsed! + mem.external!, cpuS: cpuSeconds(s.pid) };
}

const MB = 1024 * 1024;

/** Samples the server's RSS; past the cap (or when the server dies) it calls `onStop` once. */
class RssWatch {
  peakMb = 0;
  outcome: Outcome = 'ok';
  private readonly timer: NodeJS.Timeout;
  constructor(
    private readonly pid: number,
    private readonly capMb: number,
    private readonly onStop: () => void,
  ) {
    this.timer = setInterval(() => this.sample(), 50);
    this.sample();
  }
  sample(): void {
    if (this.outcome !== 'ok') return;
    const rss = rssMb(this.pid);
    if (Number.isFinite(rss)) this.peakMb = Math.max(this.peakMb, rss);
    if (!alive(this.pid)) this.stop('crashed');
    else if (rss > this.capMb) this.stop('exceeded the RSS cap');
  }
  private stop(outcome: Outcome): void {
    this.outcome = outcome;
    this.onStop();
  }
  end(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => undefined); // 'close' follows; a reset is an outcome here, not a failure
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Writes, waiting for the socket to drain (or close) when its buffer is full. */
function send(s: Socket, data: Buffer | string): Promise<void> {
  if (s.destroyed || s.write(data)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.once('drain', done);
    s.once('close', done);
  });
}

/** Polls `cond` every `everyMs` until it holds (true), `stop()` holds or `timeoutMs` passes (false). */
async function until(cond: () => boolean, stop: () => boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    if (stop()) return false;
    if (cond()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Keeps the first bytes a server sends on a socket (an early answer such as 413 or 408). */
function firstBytes(s: Socket, max = 160): () => string {
  let text = '';
  s.on('data', (d: Buffer) => {
    if (text.length < max) text += d.toString('latin1', 0, Math.min(d.length, max - text.length));
  });
  return () => text.split('\r\n')[0] ?? '';
}

/**
 * Whether the server has read everything the client wrote on `s`: nothing left in the client's
 * buffer, nothing unacknowledged in its kernel queue, nothing unread in the server's. A closed
 * connection counts as done (the server cut it).
 */
function allRead(s: Socket, serverPort: number): boolean {
  if (s.destroyed) return true;
  if (s.writableLength > 0) return false;
  const q = connectionQueues(s.localPort!, serverPort);
  return q === undefined || (q.clientTx === 0 && q.serverRx === 0);
}

export interface ChunkedResult {
  outcome: Outcome;
  rssGrowthMb: number;
  peakRssMb: number;
  rssBytesPerChunk?: number;
  heapBytesPerChunk?: number;
  cpuUsPerChunk?: number;
  /** What the server answered, if anything (it should not before the body ends). */
  answers: string[];
}

/** One chunk of one byte: 6 bytes on the wire per byte of body. */
export const ONE_BYTE_CHUNK = '1\r\nx\r\n';
export const CHUNKED_HEAD = 'POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';

/**
 * `connections` requests in parallel, each a chunked body of `chunks` one-byte chunks that never
 * ends; measured once the server has read every byte.
 */
export async function chunkedBodies(s: Server, connections: number, chunks: number, capMb: number, timeoutMs: number): Promise<ChunkedResult> {
  const perPiece = 8192;
  const piece = Buffer.from(ONE_BYTE_CHUNK.repeat(perPiece), 'latin1');
  const before = await snapshot(s);
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(s.port)));
  const answers = sockets.map(firstBytes);
  const watch = new RssWatch(s.pid, capMb, () => sockets.forEach((c) => c.destroy()));
  // At ~20 bytes of memory per byte on the wire, the kernel's socket buffers (megabytes) could carry
  // the server far past the cap after it is seen: keep about a window per connection in flight
  // (written but not yet read by the server, as its read() bytes in /proc tell).
  const window = 1024 * 1024;
  const rchar0 = ioCounters(s.pid)?.rchar ?? 0;
  let sent = 0;
  let ended = false;
  const inFlight = () => sent - ((ioCounters(s.pid)?.rchar ?? Infinity) - rchar0);
  const pump = async (c: Socket) => {
    sent += CHUNKED_HEAD.length;
    await send(c, CHUNKED_HEAD);
    // a server that ends the connection (an early answer) gets no more
    const over = () => {
      if (watch.outcome === 'ok' && (c.destroyed || c.readableEnded)) ended = true;
      return watch.outcome !== 'ok' || ended;
    };
    for (let left = chunks; left > 0 && !over(); left -= perPiece) {
      const data = left >= perPiece ? piece : piece.subarray(0, left * ONE_BYTE_CHUNK.length);
      sent += data.length;
      await send(c, data);
      await until(() => inFlight() <= window * connections, () => (watch.sample(), over()), timeoutMs, 2);
    }
  };
  await Promise.all(sockets.map(pump));
  const read = await until(() => sockets.every((c) => allRead(c, s.port)), () => watch.outcome !== 'ok', timeoutMs);
  watch.end();
  const after = watch.outcome === 'ok' ? await snapshot(s) : undefined;
  sockets.forEach((c) => c.destroy());
  const outcome: Outcome = watch.outcome !== 'ok' ? watch.outcome : ended ? 'ended the connection' : read ? 'ok' : 'timed out';
  const total = connections * chunks;
  const result: ChunkedResult = { outcome, rssGrowthMb: (after?.rssMb ?? watch.peakMb) - before.rssMb, peakRssMb: watch.peakMb, answers: answers.map((a) => a()).filter((a) => a !== '') };
  if (outcome === 'ok' && after) {
    result.rssBytesPerChunk = ((after.rssMb - before.rssMb) * MB) / total;
    result.heapBytesPerChunk = ((after.heapMb - before.heapMb) * 1e6) / total; // /stats reports 1e6-byte MB
    result.cpuUsPerChunk = ((after.cpuS - before.cpuS) * 1e6) / total;
  }
  return result;
}

export const HEALTH_REQUEST = 'GET /health HTTP/1.1\r\nHost: bench\r\n\r\n';

export interface PipelineResult {
  outcome: Outcome;
  /** Whole requests the server read (its read() bytes over the request size). */
  requestsRead: number;
  /** The server read everything (false: it stopped reading while requests were waiting). */
  readAll: boolean;
  rssGrowthMb: number;
  peakRssMb: number;
  cpuMs: number;
}

/**
 * `requests` pipelined GET /health on one connection by a client that never reads (its socket
 * paused from the start: Node reads at most its high-water mark of 16 KiB before stopping).
 * Finished when the server has read everything, or when its reads stall for `stallMs` with
 * requests waiting in its receive queue: it stopped reading, as a server should.
 */
export async function pipelined(s: Server, requests: number, capMb: number, timeoutMs: number, stallMs = 1000): Promise<PipelineResult> {
  const perPiece = 1000;
  const piece = Buffer.from(HEALTH_REQUEST.repeat(perPiece), 'latin1');
  const before = await snapshot(s);
  const io0 = ioCounters(s.pid);
  const c = await open(s.port);
  c.pause();
  const watch = new RssWatch(s.pid, capMb, () => c.destroy());
  let written = false;
  void (async () => {
    for (let left = requests; left > 0 && watch.outcome === 'ok'; left -= perPiece) await send(c, left >= perPiece ? piece : piece.subarray(0, left * HEALTH_REQUEST.length));
    written = true;
  })();
  let lastRchar = io0?.rchar ?? 0;
  let lastProgress = Date.now();
  let stalled = false;
  const done = await until(
    () => {
      if (written && allRead(c, s.port)) return true;
      const rchar = ioCounters(s.pid)?.rchar ?? 0;
      if (rchar - lastRchar >= 1024) {
        lastRchar = rchar;
        lastProgress = Date.now();
      }
      const waiting = (connectionQueues(c.localPort!, s.port)?.serverRx ?? 0) > 0;
      stalled = waiting && Date.now() - lastProgress >= stallMs;
      return stalled;
    },
    () => watch.outcome !== 'ok',
    timeoutMs,
    100,
  );
  const io1 = ioCounters(s.pid);
  watch.end();
  const after = watch.outcome === 'ok' ? await snapshot(s) : undefined;
  c.destroy();
  const readBytes = io0 && io1 ? io1.rchar - io0.rchar : NaN;
  return {
    outcome: watch.outcome !== 'ok' ? watch.outcome : done ? 'ok' : 'timed out',
    requestsRead: Math.min(requests, Math.floor(readBytes / HEALTH_REQUEST.length)),
    readAll: done && !stalled,
    rssGrowthMb: (after?.rssMb ?? watch.peakMb) - before.rssMb,
    peakRssMb: watch.peakMb,
    cpuMs: ((after?.cpuS ?? cpuSeconds(s.pid)) - before.cpuS) * 1000,
  };
}

/** A GET /health head of about `bytes` bytes: filler headers of 64 bytes each. */
export function largeHead(bytes: number): { head: Buffer; headers: number } {
  let text = HEALTH_REQUEST.slice(0, -2);
  let n = 0;
  for (;;) {
    const name = `X-Filler-${String(n).padStart(4, '0')}: `;
    const line = `${name}${'v'.repeat(62 - name.length)}\r\n`;
    if (text.length + line.length + 2 > bytes) break;
    text += line;
    n++;
  }
  return { head: Buffer.from(`${text}\r\n`, 'latin1'), headers: n + 1 };
}

export interface HeadResult {
  cpuMs: number;
  /** read() calls the server made meanwhile: how finely the head reached it. */
  reads: number | undefined;
  status: number;
}

/**
 * Sends `head` one byte per write (TCP_NODELAY) and lets each byte reach the server on its own: the
 * next byte leaves only once the server has made another read() call (its syscr in /proc grew), so
 * the head arrives in about as many reads as it has bytes, the worst a slow client can make of it.
 * A byte not read within a second is not waited for further. Then waits for the answer's status line.
 */
export async function headByteAtATime(s: Server, head: Buffer, timeoutMs: number): Promise<HeadResult> {
  const c = await open(s.port);
  const answer = firstBytes(c);
  const reads = () => ioCounters(s.pid)?.syscr ?? Infinity;
  const cpu0 = preciseCpuS(s.pid);
  const reads0 = reads();
  let seen = reads0;
  for (let i = 0; i < head.length && !c.destroyed; i++) {
    c.write(head.subarray(i, i + 1)); // a 1-byte write is in the kernel when write() returns
    for (const deadline = Date.now() + 1000, before = seen; (seen = reads()) <= before && Date.now() < deadline; ) {
      // spin on /proc (microseconds a turn): a timer would add a millisecond per byte
    }
  }
  await until(() => answer().length >= 12 || c.destroyed, () => false, timeoutMs, 5);
  const cpu1 = preciseCpuS(s.pid);
  const reads1 = reads();
  c.destroy();
  return { cpuMs: (cpu1 - cpu0) * 1000, reads: Number.isFinite(reads1 - reads0) ? reads1 - reads0 : undefined, status: Number(answer().slice(9, 12)) };
}

/** `n` ordinary GET /health one after another on one keep-alive connection: CPU per request. */
export async function smallRequests(s: Server, n: number): Promise<{ cpuUsPerRequest: number; non200: number }> {
  const c = await RawClient.open(s.port);
  let non200 = 0;
  const cpu0 = preciseCpuS(s.pid);
  try {
    for (let i = 0; i < n; i++) if ((await c.get('/health')).status !== 200) non200++;
  } finally {
    c.close();
  }
  return { cpuUsPerRequest: ((preciseCpuS(s.pid) - cpu0) * 1e6) / n, non200 };
}
