import type { Socket } from 'node:net';

/** Writes up to this size are composed in the shared buffer; larger ones get their own. */
const SCRATCH_BYTES = 16 * 1024;

let scratch: Buffer | undefined;

/**
 * A buffer of `size` bytes to compose one write to `socket` in. When the socket has nothing queued
 * (so the write goes straight to the kernel) this is a view of one shared buffer instead of a new
 * allocation per write: a fresh buffer per response was a good part of the proxy's garbage.
 * Send it with `writeOut(socket, buf)`.
 */
export function writeBuffer(socket: Socket, size: number): Buffer {
  // a TLS socket's writes complete later (encrypted, then written): each would give the shared buffer away
  if (size > SCRATCH_BYTES || socket.writableLength !== 0 || socket.writableCorked !== 0 || (socket as { encrypted?: boolean }).encrypted === true) return Buffer.allocUnsafe(size);
  scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES);
  return scratch.subarray(0, size);
}

/**
 * Writes a buffer from `writeBuffer` to `socket` (returns what `socket.write` returns). When the
 * kernel did not take all of it at once, the socket keeps `buf` queued, so the shared buffer is
 * left to it and a new one is made for the next write.
 */
export function writeOut(socket: Socket, buf: Buffer): boolean {
  const ok = socket.write(buf);
  if (socket.writableLength !== 0 && scratch !== undefined && buf.buffer === scratch.buffer) scratch = undefined;
  return ok;
}
