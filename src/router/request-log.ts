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

/** Lines are written when this much is pending, or by the timer below. */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_EVERY_MS = 1000;
/** Pending text beyond this while a write is still under way is dropped (and counted), not held. */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

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
  private pending: string[] = [];
  private pendingBytes = 0;
  private writing = false;
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
    this.timer = setInterval(() => this.flush(), FLUSH_EVERY_MS);
    this.timer.unref();
  }

  write(r: RequestRecord): void {
    if (this.pendingBytes > MAX_PENDING_BYTES) {
      this.dropped++;
      return;
    }
    const line = `${this.prefix}${this.clock.format(Date.now())}","request_id":${quote(r.requestId)},"model":${optQuote(r.model)},"backend":${optQuote(r.backend)},"status":${r.status === 0 ? 'null' : r.status},"end":"${r.end}","attempts":${r.attempts},"stream":${r.stream},"bytes_in":${r.bytesIn},"bytes_out":${r.bytesOut},"ttft_ms":${r.ttftMs === undefined ? 'null' : round(r.ttftMs)},"duration_ms":${round(r.durationMs)}${r.outputTokens === undefined ? '' : `,"output_tokens":${r.outputTokens}`},"client":${quote(r.client)}}\n`;
    this.pending.push(line);
    // string length: bytes for the ASCII a line mostly is (a bound, not an exact count)
    this.pendingBytes += line.length;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
  }

  /** Starts writing what is pending unless a write is under way (its end starts the next). */
  private flush(): void {
    if (this.writing || this.pending.length === 0) return;
    const data = Buffer.from(this.pending.join(''));
    this.pending = [];
    this.pendingBytes = 0;
    this.writing = true;
    this.writeAll(data, 0);
  }

  private writeAll(data: Buffer, from: number): void {
    write(this.fd, data, from, data.length - from, null, (err, n) => {
      if (err) {
        this.writing = false;
        // EAGAIN on a non-blocking stdout pipe: try the rest again shortly; anything else is reported once per batch
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.writing = true;
          setTimeout(() => this.writeAll(data, from), 10).unref();
        } else this.onError(err);
        return;
      }
      if (from + n < data.length) return this.writeAll(data, from + n);
      this.writing = false;
      if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    });
  }

  /** Writes everything pending now, synchronously (at stop), and closes a file it opened. */
  close(): void {
    clearInterval(this.timer);
    try {
      if (this.pending.length > 0) writeSync(this.fd, this.pending.join(''));
      this.pending = [];
      // a write still under way keeps its file open; the process is stopping anyway
      if (this.ownsFd && !this.writing) closeSync(this.fd);
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
