import { closeSync, openSync, write, writeSync } from 'node:fs';
import { REQUEST_ID_PREFIX } from './request-id.js';
import { JsonLineWriter, jsonString, text, utf8Text, worstBytes, type Piece } from './json-line.js';

/**
 * How a proxied request ended, as the request log and the recent-errors list say it. `refused`: the
 * key gate answered it (401, 400, 404, 429) before any routing.
 */
export type EndReason = 'completed' | 'client_gone' | 'upstream_error' | 'timeout' | 'no_backend' | 'queue_full' | 'queue_timeout' | 'refused';

/** The end reason with the keys around it, as one piece (fewer copies per line). */
const END_ATTEMPTS: Record<EndReason, Piece> = {
  completed: endPiece('completed'),
  client_gone: endPiece('client_gone'),
  upstream_error: endPiece('upstream_error'),
  timeout: endPiece('timeout'),
  no_backend: endPiece('no_backend'),
  queue_full: endPiece('queue_full'),
  queue_timeout: endPiece('queue_timeout'),
  refused: endPiece('refused'),
};
function endPiece(reason: EndReason): Piece {
  return text(`,"end":"${reason}","attempts":`);
}

/** One finished request, as logged. */
export interface RequestRecord {
  requestId: string;
  /** The counter of an id the router made (its prefix, `-` and this in base 36); 0 for a client's own id. */
  requestNumber: number;
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
  /** When it ended, in performance.now() milliseconds (the clock the forwarder times requests by). */
  endedAt: number;
  /** Milliseconds it waited for a backend with room (the wait queue); undefined if it never waited. */
  queuedMs?: number | undefined;
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
/** How long close() waits for a write under way (a stuck disk must not hold up the stop). */
const CLOSE_WAIT_MS = 2000;

/** The line's opening up to its time, with the time up to the second: encoded once per second. */
class LineStart {
  /** The second encoded in `bytes`, as [from, to) in milliseconds. */
  private from = 0;
  private to = 0;
  private bytes: Piece = text('');

  constructor(private readonly opening: string) {}

  /** `now`: whole milliseconds since the epoch. */
  write(w: JsonLineWriter, now: number): void {
    if (now < this.from || now >= this.to) {
      this.from = now - (now % 1000);
      this.to = this.from + 1000;
      this.bytes = text(this.opening + new Date(this.from).toISOString().slice(0, 20));
    }
    w.raw(this.bytes);
    w.digits3(now - this.from);
  }
}

/**
 * A backend's name and a model with the keys around them, and the usual line's run from there to
 * `bytes_in`, encoded once: a line then copies words instead of checking strings character by
 * character. Keyed by backend, then model (a backend serves few models).
 */
class RoutePieces {
  readonly plain: Piece;
  readonly okWhole: Piece;
  readonly okStreamed: Piece;

  constructor(model: string | undefined, backend: string | undefined) {
    const route = `,"model":${jsonString(model)},"backend":${jsonString(backend)}`;
    this.plain = utf8Text(route);
    this.okWhole = utf8Text(route + OK_WHOLE);
    this.okStreamed = utf8Text(route + OK_STREAMED);
  }
}
/** Route pieces kept at most (model names are the client's: bounded, then started afresh). */
const MAX_ROUTES = 1024;

const OK_STREAMED = ',"status":200,"end":"completed","attempts":1,"stream":true,"bytes_in":';
const OK_WHOLE = ',"status":200,"end":"completed","attempts":1,"stream":false,"bytes_in":';
const K_REQUEST_ID = text('Z","request_id":');
/** The key and the opening of an id the router made, up to its counter. */
const K_OWN_REQUEST_ID = text(`Z","request_id":"${REQUEST_ID_PREFIX}-`);
const QUOTE = text('"');
const K_STATUS = text(',"status":');
const K_STREAMED = text(',"stream":true,"bytes_in":');
const K_WHOLE = text(',"stream":false,"bytes_in":');
const K_BYTES_OUT = text(',"bytes_out":');
const K_TTFT = text(',"ttft_ms":');
const K_DURATION = text(',"duration_ms":');
const K_TOKENS = text(',"output_tokens":');
const K_QUEUED = text(',"queued_ms":');
const NULL = text('null');
/** Bytes of a line beyond its strings (keys, numbers, time); generous. */
const FIXED_BYTES = 512;

/**
 * One JSON line per proxied request, in the shape of the services' other log lines (level, time,
 * svc, pid, msg). The request path pays for one string: lines are kept in a list and written
 * together (64 KiB or once a second) by an asynchronous write, so no request waits for the disk.
 * Never the body and never a header: only the fields of RequestRecord.
 */
export class RequestLog {
  private fd: number;
  /** A file opened again by reopen(), taken up once the write under way ends (a line never spans two files). */
  private nextFd: number | undefined;
  private readonly ownsFd: boolean;
  private readonly start: LineStart;
  /** The buffer lines are encoded into now. */
  private readonly line = new JsonLineWriter(Buffer.allocUnsafe(CHUNK_BYTES));
  /** Filled buffers in write order; the first is being written while `writing`. */
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private writing = false;
  /** Emptied buffers kept for reuse (two are enough for a disk that keeps up). */
  private readonly spare: Buffer[] = [];
  private readonly timer: NodeJS.Timeout;
  /**
   * Wall-clock minus performance.now() milliseconds, taken again at every flush tick: a line's time
   * is its end on the forwarder's clock plus this, which spares a Date.now() a line (~35 ns) and
   * follows wall-clock steps within a second.
   */
  private clockOffset = Date.now() - performance.now();
  /** Lines dropped because the output could not keep up. */
  dropped = 0;
  private readonly routes = new Map<string | undefined, Map<string | undefined, RoutePieces>>();
  private routeCount = 0;
  /** The last client address, and it with the line's end around it (clients keep their connections). */
  private client: string | undefined;
  private clientEnd: Piece = text('');
  private closed = false;
  /** Called when the write under way at close() ends. */
  private onIdle: (() => void) | undefined;

  /** `target`: `stdout` or a file path (appended to). */
  constructor(
    private readonly target: string,
    private readonly onError: (err: Error) => void,
  ) {
    this.ownsFd = target !== 'stdout';
    this.fd = this.ownsFd ? openSync(target, 'a') : 1;
    this.start = new LineStart(`{"level":"info","svc":"router","pid":${process.pid},"msg":"request","time":"`);
    this.timer = setInterval(() => {
      this.clockOffset = Date.now() - performance.now();
      this.rotate();
    }, FLUSH_EVERY_MS);
    this.timer.unref();
  }

  /**
   * Encodes the line at once into the current buffer, so that the string dies young (lines held
   * as strings until a batch is written would survive into the old generation and cost full GCs).
   */
  write(r: RequestRecord): void {
    if (this.queuedBytes > MAX_QUEUED_BYTES || this.closed) {
      this.dropped++;
      return;
    }
    const worst = FIXED_BYTES + worstBytes(r.requestId) + worstBytes(r.model) + worstBytes(r.backend) + worstBytes(r.client);
    if (worst > CHUNK_BYTES) {
      // a client-chosen request id or model that long gets a buffer of its own
      this.rotate();
      const own = new JsonLineWriter(Buffer.allocUnsafe(worst));
      this.encode(own, r);
      this.enqueue(own.buf.subarray(0, own.at));
      return;
    }
    if (this.line.at + worst > CHUNK_BYTES) this.rotate();
    this.encode(this.line, r);
  }

  private encode(w: JsonLineWriter, r: RequestRecord): void {
    this.start.write(w, Math.floor(r.endedAt + this.clockOffset));
    if (r.requestNumber > 0) {
      // the router's own id: its counter's digits, not the string's characters one by one
      w.raw(K_OWN_REQUEST_ID);
      w.base36(r.requestNumber);
      w.raw(QUOTE);
    } else {
      w.raw(K_REQUEST_ID);
      w.str(r.requestId);
    }
    const route = this.route(r.model, r.backend);
    if (r.status === 200 && r.attempts === 1 && r.end === 'completed') {
      // the usual line: model to bytes_in as one piece
      w.raw(r.stream ? route.okStreamed : route.okWhole);
    } else {
      w.raw(route.plain);
      w.raw(K_STATUS);
      if (r.status === 0) w.raw(NULL);
      else w.int(r.status);
      w.raw(END_ATTEMPTS[r.end]);
      w.int(r.attempts);
      w.raw(r.stream ? K_STREAMED : K_WHOLE);
    }
    w.int(r.bytesIn);
    w.raw(K_BYTES_OUT);
    w.int(r.bytesOut);
    w.raw(K_TTFT);
    if (r.ttftMs === undefined) w.raw(NULL);
    else w.fixed2(r.ttftMs);
    w.raw(K_DURATION);
    w.fixed2(r.durationMs);
    if (r.queuedMs !== undefined) {
      w.raw(K_QUEUED);
      w.fixed2(r.queuedMs);
    }
    if (r.outputTokens !== undefined) {
      w.raw(K_TOKENS);
      w.int(r.outputTokens);
    }
    if (r.client !== this.client) {
      this.client = r.client;
      this.clientEnd = utf8Text(`,"client":${jsonString(r.client)}}\n`);
    }
    w.raw(this.clientEnd);
  }

  private route(model: string | undefined, backend: string | undefined): RoutePieces {
    let byModel = this.routes.get(backend);
    let p = byModel?.get(model);
    if (p !== undefined) return p;
    if (this.routeCount >= MAX_ROUTES) {
      this.routes.clear();
      this.routeCount = 0;
      byModel = undefined;
    }
    if (byModel === undefined) this.routes.set(backend, (byModel = new Map()));
    p = new RoutePieces(model, backend);
    byModel.set(model, p);
    this.routeCount++;
    return p;
  }

  /** Queues the current buffer's lines for writing and starts a fresh buffer. */
  private rotate(): void {
    const w = this.line;
    if (w.at === 0) return;
    this.enqueue(w.buf.subarray(0, w.at));
    w.buf = this.spare.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
    w.at = 0;
  }

  /**
   * Opens the file at the target path again (logrotate moved the old one away and sent SIGHUP):
   * lines not yet written go to the new file, a write under way finishes in the old one. False for
   * stdout, after close, or when the path cannot be opened (the old file is kept).
   */
  reopen(): boolean {
    if (!this.ownsFd || this.closed) return false;
    let fd: number;
    try {
      fd = openSync(this.target, 'a');
    } catch (err) {
      this.onError(err as Error);
      return false;
    }
    if (this.nextFd !== undefined) closeSync(this.nextFd);
    this.nextFd = fd;
    if (!this.writing) this.takeNextFd();
    return true;
  }

  private takeNextFd(): void {
    const fd = this.nextFd;
    if (fd === undefined) return;
    this.nextFd = undefined;
    try {
      closeSync(this.fd);
    } catch (err) {
      this.onError(err as Error);
    }
    this.fd = fd;
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
      this.takeNextFd();
      if (this.closed) this.onIdle?.();
      else this.writeNext(0);
    });
  }

  /**
   * Writes everything pending and closes a file it opened (at stop). A write already under way
   * is waited for first (up to CLOSE_WAIT_MS), so that the lines stay in order in the file.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.writing) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onIdle = resolve;
        timer = setTimeout(resolve, CLOSE_WAIT_MS);
      });
      clearTimeout(timer);
    }
    try {
      // a write still under way after the wait keeps its buffer; the rest goes now, in order
      const rest = this.writing ? this.queue.slice(1) : this.queue.slice();
      if (this.line.at > 0) rest.push(this.line.buf.subarray(0, this.line.at));
      for (const b of rest) writeSync(this.fd, b);
      this.queue.length = 0;
      this.line.at = 0;
      // a write still under way keeps its file open; the process is stopping anyway
      if (this.ownsFd && !this.writing) closeSync(this.fd);
      if (this.nextFd !== undefined) closeSync(this.nextFd);
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
