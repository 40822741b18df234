import { closeSync, openSync, write, writeSync } from 'node:fs';

/** How a proxied request ended, as the request log and the recent-errors list say it. */
export type EndReason = 'completed' | 'client_gone' | 'upstream_error' | 'timeout' | 'no_backend';

/** One finished request, as logged. */
export interface RequestRecord {
  requestId: string;
  model: string | undefined;
  backend: string | undefined;
  /** Status the client got; 0 if it got none (gone first, or cut off before the head). */
  status: number;
  attempts: number;
  bytesIn: number;
  bytesOut: number;
  /** Milliseconds to the first answer byte; undefined if none arrived. */
  ttftMs: number | undefined;
  durationMs: number;
  outputTokens: number | undefined;
  stream: boolean;
  client: string;
  end: EndReason;
}

/** Lines are encoded into buffers of this size, each written when full or by the timer below. */
const CHUNK_BYTES = 64 * 1024;
const FLUSH_EVERY_MS = 1000;
/** Filled buffers waiting for the disk beyond this are not kept: further lines are dropped (and counted). */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** Strings that need no JSON escaping: printable ASCII without `"` and `\`. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const quote = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));
const optQuote = (s: string | undefined): string => (s === undefined ? 'null' : quote(s));
const round = (ms: number): number => Math.round(ms * 100) / 100;

/** ISO-8601 time of `now`, with the part up to the second made once per second. */
class IsoClock {
  private second = -1;
  private prefix = '';

  format(now: number): string {
    const s = Math.floor(now / 1000);
    if (s !== this.second) {
      this.second = s;
      this.prefix = new Date(s * 1000).toISOString().slice(0, 20);
    }
    const ms = now - s * 1000;
    return `${this.prefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
  }
}

/**
 * One JSON line per proxied request, in the shape of the services' other log lines (level, time,
 * svc, pid, msg). The request path pays for one string: lines are kept in a list and written
 * together (64 KiB or once a second) by an asynchronous write, so no request waits for the disk.
 * Never the body and never a header: only the fields of RequestRecord.
 */
export class RequestLog {
  private readonly fd: number;
  private readonly ownsFd: boolean;
  private readonly prefix: string;
  private readonly clock = new IsoClock();
  /** The buffer lines are encoded into now, and how much of it is used. */
  private buf: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  private used = 0;
  /** Filled buffers in write order; the first is being written while `writing`. */
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private writing = false;
  /** Emptied buffers kept for reuse (two are enough for a disk that keeps up). */
  private readonly spare: Buffer[] = [];
  private readonly timer: NodeJS.Timeout;
  /** Lines dropped because the output could not keep up. */
  dropped = 0;

  /** `target`: `stdout` or a file path (appended to). */
  constructor(
    target: string,
    private readonly onError: (err: Error) => void,
  ) {
    this.ownsFd = target !== 'stdout';
    this.fd = this.ownsFd ? openSync(target, 'a') : 1;
    this.prefix = `{"level":"info","svc":"router","pid":${process.pid},"msg":"request","time":"`;
    this.timer = setInterval(() => this.rotate(), FLUSH_EVERY_MS);
    this.timer.unref();
  }

  /**
   * Encodes the line at once into the current buffer, so that the string dies young (lines held
   * as strings until a batch is written would survive into the old generation and cost full GCs).
   */
  write(r: RequestRecord): void {
    if (this.queuedBytes > MAX_QUEUED_BYTES) {
      this.dropped++;
      return;
    }
    const line = `${this.prefix}${this.clock.format(Date.now())}","request_id":${quote(r.requestId)},"model":${optQuote(r.model)},"backend":${optQuote(r.backend)},"status":${r.status === 0 ? 'null' : r.status},"end":"${r.end}","attempts":${r.attempts},"stream":${r.stream},"bytes_in":${r.bytesIn},"bytes_out":${r.bytesOut},"ttft_ms":${r.ttftMs === undefined ? 'null' : round(r.ttftMs)},"duration_ms":${round(r.durationMs)}${r.outputTokens === undefined ? '' : `,"output_tokens":${r.outputTokens}`},"client":${quote(r.client)}}\n`;
    // at most 3 bytes per UTF-16 unit
    const worst = line.length * 3;
    if (worst > CHUNK_BYTES) {
      // a client-chosen request id or model that long gets a buffer of its own
      this.rotate();
      this.enqueue(Buffer.from(line));
      return;
    }
    if (this.used + worst > CHUNK_BYTES) this.rotate();
    this.used += this.buf.write(line, this.used);
  }

  /** Queues the current buffer's lines for writing and starts a fresh buffer. */
  private rotate(): void {
    if (this.used === 0) return;
    this.enqueue(this.buf.subarray(0, this.used));
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
    this.used = 0;
  }

  private enqueue(data: Buffer): void {
    this.queue.push(data);
    this.queuedBytes += data.length;
    if (!this.writing) this.writeNext(0);
  }

  private writeNext(from: number): void {
    const data = this.queue[0];
    if (data === undefined) return;
    this.writing = true;
    write(this.fd, data, from, data.length - from, null, (err, n) => {
      if (err) {
        // EAGAIN on a non-blocking stdout pipe: try again shortly; anything else loses this buffer, reported once
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          setTimeout(() => this.writeNext(from), 10).unref();
          return;
        }
        this.onError(err);
        n = data.length - from;
      }
      if (from + n < data.length) return this.writeNext(from + n);
      this.queue.shift();
      this.queuedBytes -= data.length;
      if (data.buffer.byteLength === CHUNK_BYTES && this.spare.length < 2) this.spare.push(Buffer.from(data.buffer, data.byteOffset, CHUNK_BYTES));
      this.writing = false;
      this.writeNext(0);
    });
  }

  /** Writes everything pending now, synchronously (at stop), and closes a file it opened. */
  close(): void {
    clearInterval(this.timer);
    try {
      // a buffer being written by the asynchronous write is left to it; the rest goes now, in order
      const rest = this.writing ? this.queue.slice(1) : this.queue.slice();
      if (this.used > 0) rest.push(this.buf.subarray(0, this.used));
      for (const b of rest) writeSync(this.fd, b);
      this.queue.length = 0;
      this.used = 0;
      // a write still under way keeps its file open; the process is stopping anyway
      if (this.ownsFd && !this.writing) closeSync(this.fd);
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
