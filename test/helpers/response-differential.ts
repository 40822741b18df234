/**
 * Feeds the same response bytes to the router's upstream ResponseParser (in-process, as
 * UpstreamConnection drives it) and to llhttp (a node:http client request answered by a raw
 * server that writes the bytes), and records what each makes of them: the head a relay would pass
 * on, the body, how the response ended and whether the connection could carry another request.
 *
 * The raw server first leaves the connection open, so that a response complete by its framing is
 * seen as such (and its reuse judged); only when it is not does the server close, which ends a
 * close-delimited body or cuts off a short one.
 */
import { Agent, request, type IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { ResponseParser, type ParserSink, type ResponseHead } from '../../src/router/upstream/response-parser.js';

export type ResponseEnd =
  /** The framing ended the body; `reusable`: the connection may carry the next request. */
  | { kind: 'complete'; reusable: boolean }
  /** A close-delimited body, ended by the server's close. */
  | { kind: 'eof' }
  /** The connection closed before the response was complete. */
  | { kind: 'cut' }
  | { kind: 'error'; detail: string };

export interface ResponseOutcome {
  /** The final head, as a relay would pass it on (undefined when none was accepted). */
  head: { status: number; headers: string[] } | undefined;
  /** Body bytes as delivered (decoded from chunked), latin1. */
  body: string;
  end: ResponseEnd;
}

/** A read buffer shared by every read, like UpstreamConnection's: what the parser keeps it must copy. */
const READ_BUFFER = Buffer.alloc(64 * 1024);

/**
 * Our parser on `parts` (one read each), then the connection's close if the response is not over.
 * Reuse follows UpstreamConnection: the head allows it and nothing follows the response.
 */
export function parseWithOurs(parts: readonly Buffer[], headRequest: boolean): ResponseOutcome {
  const out: ResponseOutcome = { head: undefined, body: '', end: { kind: 'cut' } };
  let head: ResponseHead | undefined;
  let ended = false;
  const sink: ParserSink = {
    onHead(h) {
      head = h;
      out.head = { status: h.status, headers: [...h.headers] };
    },
    onBody(data, start, end) {
      out.body += data.toString('latin1', start, end);
    },
    onEnd() {
      ended = true;
    },
  };
  const parser = new ResponseParser(sink);
  parser.reset(headRequest);
  try {
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part.length === 0) continue;
      part.copy(READ_BUFFER);
      const used = parser.execute(READ_BUFFER, part.length);
      READ_BUFFER.fill(0x5a, 0, part.length); // the next read overwrites it
      if (ended) {
        const more = parts.slice(i + 1).some((p) => p.length > 0);
        out.end = { kind: 'complete', reusable: head!.keepAlive && used === part.length && !more };
        return out;
      }
    }
    if (parser.finish()) out.end = head !== undefined && head.framing === 'close' ? { kind: 'eof' } : { kind: 'complete', reusable: false };
  } catch (err) {
    out.end = { kind: 'error', detail: (err as Error).message };
  }
  return out;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const STALL_TURNS = 20_000;

/** A raw TCP server that answers each request for `/<id>` with the bytes registered under that id. */
export class RawResponder {
  private readonly server: Server;
  private readonly pending = new Map<string, { bytes: Buffer; socket?: Socket }>();
  private nextId = 0;
  port = 0;

  constructor() {
    this.server = createServer((socket) => {
      let head = '';
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        if (head.includes('\r\n\r\n')) return; // a second request on a reused connection: never answered
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        const id = /^[A-Z]+ \/(\d+) /.exec(head)?.[1];
        const entry = id === undefined ? undefined : this.pending.get(id);
        if (entry === undefined) return void socket.destroy();
        entry.socket = socket;
        socket.write(entry.bytes);
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** llhttp (a node:http client) on `bytes`, asked with `method`. */
  async parseWithLlhttp(bytes: Buffer, method: string): Promise<ResponseOutcome> {
    const id = String(this.nextId++);
    const entry: { bytes: Buffer; socket?: Socket } = { bytes };
    this.pending.set(id, entry);
    const out: ResponseOutcome = { head: undefined, body: '', end: { kind: 'cut' } };
    let settled: ResponseEnd | undefined;
    let closedByServer = false;
    let events = 0;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const req = request({ host: '127.0.0.1', port: this.port, path: `/${id}`, method, agent });
    let socket: Socket | undefined;
    let response: IncomingMessage | undefined;
    req.on('socket', (s: Socket) => (socket = s));
    const fail = (err: NodeJS.ErrnoException & { reason?: string }): void => {
      events++;
      if (settled !== undefined && settled.kind !== 'cut') return;
      const code = err.code ?? '';
      // bytes after a complete response: llhttp reports them before the response's 'end' event
      if (response?.complete) settled = { kind: 'complete', reusable: false };
      else settled = code.startsWith('HPE_') ? { kind: 'error', detail: `${code}: ${err.reason ?? err.message}` } : { kind: 'cut' };
    };
    req.on('error', fail);
    // 101 and CONNECT answers: llhttp hands the connection over; a relay has nothing to relay
    req.on('upgrade', (_res, s: Socket) => {
      settled = { kind: 'error', detail: 'upgrade' };
      s.destroy();
    });
    req.on('response', (res: IncomingMessage) => {
      events++;
      response = res;
      out.head = { status: res.statusCode ?? 0, headers: res.rawHeaders };
      res.on('data', (chunk: Buffer) => {
        events++;
        out.body += chunk.toString('latin1');
      });
      res.on('end', () => {
        events++;
        if (settled !== undefined) return;
        // llhttp's keep-alive verdict, and no stray bytes after the response (node:http destroys the socket then)
        settled = closedByServer ? { kind: 'eof' } : { kind: 'complete', reusable: req.shouldKeepAlive && socket !== undefined && !socket.destroyed };
      });
      res.on('error', fail);
      res.on('aborted', () => fail({ name: 'aborted', message: 'aborted', code: 'ECONNRESET' }));
    });
    req.end();

    /** Until the client read everything (or gave up), then until it stays quiet. */
    const settle = async (until: () => boolean): Promise<void> => {
      for (let i = 0; !until() && i < STALL_TURNS; i++) await turn();
      let seen = -1;
      let quiet = 0;
      for (let i = 0; quiet < 2 && i < STALL_TURNS; i++) {
        quiet = events === seen ? quiet + 1 : 0;
        seen = events;
        await turn();
      }
    };
    await settle(() => settled !== undefined || (socket !== undefined && (socket.destroyed || socket.bytesRead >= bytes.length)));
    if (settled === undefined) {
      // not over by its framing: the server closes, which ends a close-delimited body
      closedByServer = true;
      for (let i = 0; entry.socket === undefined && i < STALL_TURNS; i++) await turn();
      entry.socket?.end();
      await settle(() => settled !== undefined || socket === undefined || socket.closed);
    }
    out.end = settled ?? { kind: 'cut' };
    if (out.end.kind === 'error' && out.head !== undefined && out.end.detail === 'upgrade') out.head = undefined;
    entry.socket?.destroy();
    agent.destroy();
    req.destroy();
    this.pending.delete(id);
    return out;
  }
}
