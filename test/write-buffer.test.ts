import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { describe, it } from './helpers/test.js';
import { writeBuffer, writeOut } from '../src/common/http1/write-buffer.js';

describe('shared write buffer', () => {
  it('is never reused while a write that used it is still queued (a client that does not read)', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const open = async (): Promise<[Socket, Socket]> => {
      const accepted = once(server, 'connection') as Promise<[Socket]>;
      const client = connect(port, '127.0.0.1');
      const [sock] = await accepted;
      return [client, sock];
    };
    const [stalled, slow] = await open();
    const [reader, other] = await open();
    stalled.pause();
    reader.resume();

    // blocks of one byte value each, until a block from the shared buffer stays queued
    const BLOCK = 10_000;
    let blocks = 0;
    let queuedShared = false;
    while (!queuedShared && blocks < 10_000) {
      const idle = slow.writableLength === 0;
      const buf = writeBuffer(slow, BLOCK);
      buf.fill(blocks % 251);
      writeOut(slow, buf);
      blocks++;
      queuedShared = idle && slow.writableLength > 0;
    }
    assert.ok(queuedShared, 'a write from the shared buffer was left queued');
    // another connection that is read at once keeps writing meanwhile
    for (let i = 0; i < 50; i++) {
      const buf = writeBuffer(other, BLOCK);
      buf.fill(0xee);
      writeOut(other, buf);
    }
    slow.end();

    const chunks: Buffer[] = [];
    stalled.on('data', (c: Buffer) => chunks.push(c));
    stalled.resume();
    await once(stalled, 'end');
    for (const s of [stalled, slow, reader, other]) s.destroy();
    server.close();
    const all = Buffer.concat(chunks);
    assert.equal(all.length, blocks * BLOCK);
    for (let i = 0; i < blocks; i++) {
      const block = all.subarray(i * BLOCK, (i + 1) * BLOCK);
      assert.ok(block.every((b) => b === i % 251), `block ${i} arrived intact`);
    }
  });

  it('gives writes larger than the shared buffer, or to a corked socket, a buffer of their own', async () => {
    const server = createServer((s) => s.resume());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const sock = connect((server.address() as { port: number }).port, '127.0.0.1');
    await once(sock, 'connect');
    const a = writeBuffer(sock, 100);
    const b = writeBuffer(sock, 100);
    assert.equal(a.buffer, b.buffer, 'an idle socket gets the shared buffer');
    assert.notEqual(writeBuffer(sock, 64 * 1024).buffer, a.buffer);
    sock.cork();
    assert.notEqual(writeBuffer(sock, 100).buffer, a.buffer);
    sock.uncork();
    sock.destroy();
    server.close();
  });
});
