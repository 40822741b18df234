/**
 * Drives the same request bytes into node:http (llhttp, default strict options) and into this
 * project's Http1Server, both on 127.0.0.1, and records what each parsed: every request (method,
 * target, version, raw headers, body bytes) and how the connection ended. Each case gets its own
 * connection; a lane is one server of each kind used by one case at a time, and several lanes run
 * side by side.
 *
 * After the case's bytes a probe request follows in its own write: where each parser thinks the
 * next request starts then shows as whether, and how, the probe is parsed (a parser still inside a
 * body swallows it, one that is done parses it as a request).
 *
 * Nothing here waits on a clock: after each write the harness waits until the server's socket has
 * read every byte (or is gone), then until the event loop has nothing left to say about it.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect, type Server as NetServer, type Socket } from 'node:net';
import { Http1Server, type Http1Request } from '../../src/common/http1/server.js';
import type { Http1Response } from '../../src/common/http1/response.js';
import { toBytes } from './bytes-text.js';
import { boundedMap } from './bounded-map.js';

export const PROBE = 'GET /__probe HTTP/1.1\r\nHost: probe\r\n\r\n';

/** A request as one server saw it. */
export interface ParsedRequest {
  method: string;
  url: string;
  version: string;
  /** Flat [name, value, ...] as the parser reports them. */
  headers: string[];
  /** Body bytes (latin1). */
  body: string;
  /** The whole body arrived (our server only reports complete requests). */
  complete: boolean;
}

export type ConnectionEnd =
  /** The server still waits for bytes (between requests or inside one). */
  | { kind: 'open' }
  /** The server closed after a response (Connection: close, HTTP/1.0) without an error. */
  | { kind: 'closed' }
  /** A CONNECT request turned the connection into a tunnel (node:http). */
  | { kind: 'tunnel' }
  | { kind: 'refused'; status: number; detail: string }
  /** The server neither read all bytes nor closed (it stopped reading): a finding in itself. */
  | { kind: 'stalled' };

export interface Outcome {
  requests: ParsedRequest[];
  end: ConnectionEnd;
}

/** What node:http answers for a parser error (its default 'clientError' behaviour). */
function nodeStatus(code: string): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') return 413;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

/** What one server tells about the current case; sealed once the case is over. */
class Recording {
  readonly requests: ParsedRequest[] = [];
  end: ConnectionEnd | undefined;
  /** Counts every event, so that the harness can tell when the server has gone quiet. */
  events = 0;
  sealed = false;

  request(r: ParsedRequest): ParsedRequest | undefined {
    if (this.sealed) return undefined;
    this.events++;
    this.requests.push(r);
    return r;
  }

  finish(end: ConnectionEnd): void {
    if (this.sealed) return;
    this.events++;
    // the first refusal is the one that counts; a later close is its consequence
    if (this.end === undefined || this.end.kind === 'open') this.end = end;
  }
}

/** One side of a lane: a listening server, the socket of the current case, what it recorded. */
class Side {
  socket: Socket | undefined;
  recording = new Recording();
  port = 0;

  constructor(readonly listener: NetServer) {
    listener.on('connection', (socket: Socket) => {
      this.socket = socket;
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.listener.listen(0, '127.0.0.1', resolve));
    this.port = (this.listener.address() as { port: number }).port;
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Event-loop turns a server may take to read bytes already sent on loopback before it counts as stalled. */
const STALL_TURNS = 20_000;

/** Sends `parts` (one write each, each read by the server before the next) and then the probe. */
async function drive(side: Side, parts: readonly Buffer[], probe: boolean): Promise<Outcome> {
  const recording = new Recording();
  side.recording = recording;
  side.socket = undefined;
  const client = connect({ port: side.port, host: '127.0.0.1', noDelay: true });
  client.on('error', () => undefined); // a server that refuses may reset; the recording says what happened
  await new Promise<void>((resolve) => client.once('connect', resolve));
  // read through a function: the compiler would narrow the field to `undefined` for good
  const accepted = (): Socket | undefined => side.socket;
  for (let i = 0; accepted() === undefined; i++) {
    if (i > STALL_TURNS) throw new Error('the server never saw the connection');
    await turn();
  }
  const server = accepted()!;
  let sent = 0;
  let stalled = false;
  const gone = (): boolean => server.destroyed || recording.end !== undefined;

  /** Waits until the server read `sent` bytes (or is gone), then until it stays quiet for two turns. */
  const settle = async (): Promise<void> => {
    for (let i = 0; !gone() && server.bytesRead < sent; i++) {
      if (i > STALL_TURNS) {
        stalled = true;
        return;
      }
      await turn();
    }
    let seen = -1;
    let quiet = 0;
    for (let i = 0; quiet < 2 && i < STALL_TURNS; i++) {
      quiet = recording.events === seen ? quiet + 1 : 0;
      seen = recording.events;
      await turn();
    }
  };

  const all = probe ? [...parts, toBytes(PROBE)] : parts;
  for (const part of all) {
    if (gone() || stalled) break;
    if (part.length === 0) continue;
    client.write(part);
    sent += part.length;
    await settle();
  }
  recording.sealed = true;
  let end = recording.end;
  if (end === undefined) end = stalled ? { kind: 'stalled' } : server.destroyed || server.writableEnded ? { kind: 'closed' } : { kind: 'open' };
  const closed = new Promise<void>((resolve) => (server.closed ? resolve() : server.once('close', () => resolve())));
  server.destroy();
  client.destroy();
  await closed;
  return { requests: recording.requests, end };
}

/** One node:http server and one Http1Server, used by one case at a time. */
export class Lane {
  private readonly node: Side;
  private readonly ours: Side;
  private readonly oursServer: Http1Server;
  private readonly nodeServer: HttpServer;

  constructor(limits: { maxHeadBytes: number; maxBodyBytes: number }) {
    // the Host check is node:http's, not llhttp's: off, so that llhttp's parsing is what we compare
    // (it answers 400 but keeps reading the requests after it, which would misalign the records)
    this.nodeServer = createHttpServer({ maxHeaderSize: limits.maxHeadBytes, requireHostHeader: false });
    this.node = new Side(this.nodeServer);
    const onNodeRequest = (req: IncomingMessage, res: ServerResponse): void => {
      const r = this.node.recording.request({ method: req.method ?? '', url: req.url ?? '', version: req.httpVersion, headers: req.rawHeaders, body: '', complete: false });
      req.on('data', (chunk: Buffer) => {
        if (r !== undefined) r.body += chunk.toString('latin1');
        this.node.recording.events++;
      });
      req.on('end', () => {
        if (r !== undefined) r.complete = true;
        this.node.recording.events++;
        // an explicit length: without one node:http closes HTTP/1.0 connections whatever the request asked
        res.writeHead(200, { 'content-length': 0 });
        res.end();
      });
    };
    this.nodeServer.on('request', onNodeRequest);
    // other Expect values are parsed like any request; only the answer (417) differs
    this.nodeServer.on('checkExpectation', onNodeRequest);
    this.nodeServer.on('connect', (req: IncomingMessage, socket: Socket) => {
      this.node.recording.request({ method: req.method ?? '', url: req.url ?? '', version: req.httpVersion, headers: req.rawHeaders, body: '', complete: true });
      this.node.recording.finish({ kind: 'tunnel' });
      socket.destroy();
    });
    this.nodeServer.on('clientError', (err: NodeJS.ErrnoException & { reason?: string }, socket: Socket) => {
      if (socket === this.node.socket) {
        const code = err.code ?? 'UNKNOWN';
        // llhttp stops at bytes after a response that closes the connection; our server drops them
        if (code === 'HPE_CLOSED_CONNECTION') this.node.recording.finish({ kind: 'closed' });
        else this.node.recording.finish({ kind: 'refused', status: nodeStatus(code), detail: `${code}: ${err.reason ?? err.message}` });
      }
      socket.destroy();
    });

    let lastStatus = 0;
    this.oursServer = new Http1Server(
      (req: Http1Request, res: Http1Response) => {
        this.ours.recording.request({
          method: req.method,
          url: req.url,
          version: `${req.httpVersionMajor}.${req.httpVersionMinor}`,
          headers: req.rawHeaders,
          body: req.body?.toString('latin1') ?? '',
          complete: true,
        });
        res.writeHead(200, { 'content-length': 0 });
        res.end();
      },
      {
        maxHeadBytes: limits.maxHeadBytes,
        maxBodyBytes: limits.maxBodyBytes,
        onError: (status) => (lastStatus = status),
        errorBody: (status, message) => {
          this.ours.recording.finish({ kind: 'refused', status: status || lastStatus, detail: message });
          return JSON.stringify({ error: message });
        },
      },
    );
    this.ours = new Side(this.oursServer.server);
  }

  async start(): Promise<void> {
    await Promise.all([this.node.listen(), this.ours.listen()]);
  }

  async stop(): Promise<void> {
    this.nodeServer.closeAllConnections();
    await Promise.all([new Promise<void>((resolve) => this.nodeServer.close(() => resolve())), this.oursServer.close(100)]);
  }

  /** Both servers, one after the other, on the same writes (plus the probe). */
  async both(parts: readonly Buffer[]): Promise<{ ours: Outcome; llhttp: Outcome }> {
    const llhttp = await drive(this.node, parts, true);
    const ours = await drive(this.ours, parts, true);
    return { ours, llhttp };
  }

  /** Our server only (for split-invariance runs). */
  oursOnly(parts: readonly Buffer[]): Promise<Outcome> {
    return drive(this.ours, parts, true);
  }
}

/** Several lanes side by side. */
export class LanePool {
  private readonly lanes: Lane[];

  constructor(count: number, limits: { maxHeadBytes: number; maxBodyBytes: number }) {
    this.lanes = Array.from({ length: count }, () => new Lane(limits));
  }

  async start(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.stop()));
  }

  /** `fn` over `items`, one lane per item in flight, results in order; see boundedMap for `deadline`. */
  map<T, R>(items: readonly T[], fn: (lane: Lane, item: T) => Promise<R>, deadline = Infinity): Promise<R[]> {
    return boundedMap(this.lanes, items, fn, deadline);
  }
}
