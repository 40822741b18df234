/**
 * A minimal keep-alive HTTP/1.1 client on node:net for the abuse benchmark: one request at a time,
 * answers framed by Content-Length (what both targets send for /health and /stats). It opens no
 * connection of its own behind the caller's back, unlike fetch's pool, so the targets see only the
 * connections a measurement makes.
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  status: number;
  body: string;
  /** Bytes of the whole answer on the wire, head included. */
  bytes: number;
}

export class RawClient {
  private readonly socket: Socket;
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buffered = this.buffered.length === 0 ? d : Buffer.concat([this.buffered, d]);
      this.waiter?.();
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.waiter?.();
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1', noDelay: true });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Sends `request` (raw bytes) and reads one Content-Length answer. */
  async exchange(request: string | Buffer): Promise<RawAnswer> {
    this.socket.write(request);
    for (;;) {
      const answer = this.takeAnswer();
      if (answer) return answer;
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = undefined;
    }
  }

  get(path: string): Promise<RawAnswer> {
    return this.exchange(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`);
  }

  private takeAnswer(): RawAnswer | undefined {
    const end = this.buffered.indexOf('\r\n\r\n');
    if (end === -1) return undefined;
    const head = this.buffered.toString('latin1', 0, end);
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    const total = end + 4 + length;
    if (this.buffered.length < total) return undefined;
    const answer = { status: Number(head.slice(9, 12)), body: this.buffered.toString('utf8', end + 4, total), bytes: total };
    this.buffered = this.buffered.subarray(total);
    return answer;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** GETs `path` on a fresh connection. */
export async function rawGet(port: number, path: string): Promise<RawAnswer> {
  const c = await RawClient.open(port);
  try {
    return await c.get(path);
  } finally {
    c.close();
  }
}
