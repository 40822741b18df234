import { pino } from 'pino';

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

/** Where the request log goes: `stdout`, or a file path. */
export type RequestLogTarget = string;

const round = (ms: number) => Math.round(ms * 100) / 100;

/**
 * One JSON line per proxied request, in the same shape as the services' other log lines
 * (level, time, svc, pid, msg). Lines are built by hand and written in batches by pino's
 * asynchronous destination, so the request path pays a string and no I/O. Never the body and
 * never a header: only the fields of RequestRecord.
 */
export class RequestLog {
  private readonly out: ReturnType<typeof pino.destination>;
  private readonly prefix: string;

  constructor(target: RequestLogTarget, onError: (err: Error) => void) {
    // batches of 8 KiB, at least once a second; at most 8 MiB held if the output blocks (then lines are dropped)
    this.out = pino.destination({ dest: target === 'stdout' ? 1 : target, sync: false, minLength: 8 * 1024, maxLength: 8 * 1024 * 1024, periodicFlush: 1000, mkdir: true, append: true } as Parameters<typeof pino.destination>[0]);
    this.out.on('error', onError);
    this.prefix = `{"level":"info","svc":"router","pid":${process.pid},"msg":"request","time":"`;
  }

  write(r: RequestRecord): void {
    let line = `${this.prefix}${new Date().toISOString()}","request_id":${JSON.stringify(r.requestId)},"model":${r.model === undefined ? 'null' : JSON.stringify(r.model)},"backend":${r.backend === undefined ? 'null' : JSON.stringify(r.backend)},"status":${r.status === 0 ? 'null' : r.status},"end":"${r.end}","attempts":${r.attempts},"stream":${r.stream},"bytes_in":${r.bytesIn},"bytes_out":${r.bytesOut},"ttft_ms":${r.ttftMs === undefined ? 'null' : round(r.ttftMs)},"duration_ms":${round(r.durationMs)}`;
    if (r.outputTokens !== undefined) line += `,"output_tokens":${r.outputTokens}`;
    line += `,"client":${JSON.stringify(r.client)}}\n`;
    this.out.write(line);
  }

  /** Writes what is buffered (at stop). */
  flush(): void {
    try {
      this.out.flushSync();
    } catch {
      // not ready yet (a file still opening) or already closed: nothing buffered to lose
    }
  }
}
