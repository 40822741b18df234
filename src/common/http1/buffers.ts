/**
 * The server's input buffers. Reads can be any size, down to one byte each: keeping a view per
 * read costs ~100 bytes of heap per read whatever its size, and concatenating on every read costs
 * time quadratic in the length. Both buffers copy small reads into one growing buffer instead, so
 * memory stays proportional to the bytes held and the work to the bytes received.
 */

/** A request head being received: copied in, searched for its end from where the last search stopped. */
export class HeadBuffer {
  private buf: Buffer | undefined;
  length = 0;

  /** Appends `src[start, end)`. */
  append(src: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n <= 0) return;
    const need = this.length + n;
    if (this.buf === undefined || this.buf.length < need) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf ? this.buf.length * 2 : 1024));
      if (this.buf) this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    src.copy(this.buf, this.length, start, end);
    this.length = need;
  }

  /** Byte `i` from the end (1 = the last one); -1 if there are fewer bytes. */
  fromEnd(i: number): number {
    return this.length >= i ? this.buf![this.length - i]! : -1;
  }

  /** The buffer the bytes are in (from 0 to `length`). */
  bytes(): Buffer {
    return this.buf!;
  }

  /** Empties the buffer; a large one is let go (a 32 KiB head is rare, 32 KiB per idle connection is not). */
  clear(): void {
    this.length = 0;
    if (this.buf !== undefined && this.buf.length > 4096) this.buf = undefined;
  }
}

/** Where a byte budget for buffered request bodies is kept (one per server, shared by its connections). */
export interface BodyBudget {
  /** Takes `n` more bytes for a holder that already has `held`; false when that would exceed the budget. */
  take(n: number, held: number): boolean;
  give(n: number): void;
}

/**
 * A request body being received: copied into one buffer that grows (doubling, never beyond `limit`)
 * as bytes arrive, so a body sent in many small pieces costs its size and no more. Its capacity is
 * reserved from the server's budget before it is allocated; `reserved` is given back by `release`.
 */
export class BodyBuffer {
  private buf: Buffer | undefined;
  length = 0;
  reserved = 0;

  constructor(
    private readonly budget: BodyBudget,
    /** The most this body may hold (its Content-Length, or the body limit plus one for chunked). */
    private readonly limit: number,
  ) {}

  /**
   * Makes room for `n` more bytes (at most up to the limit). False when the budget is exhausted:
   * the caller waits until another body is released.
   */
  ensure(n: number): boolean {
    const need = Math.min(this.length + n, this.limit);
    const capacity = this.buf?.length ?? 0;
    if (need <= capacity) return true;
    const size = Math.min(this.limit, Math.max(need, capacity * 2, 16 * 1024));
    if (!this.budget.take(size - capacity, this.reserved)) return false;
    this.reserved += size - capacity;
    const grown = Buffer.allocUnsafe(size);
    if (this.buf) this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
    return true;
  }

  /** Appends `src[start, end)`; room must have been made with `ensure`. */
  append(src: Buffer, start: number, end: number): void {
    src.copy(this.buf!, this.length, start, end);
    this.length += end - start;
  }

  /** The bytes received (a view: the buffer is handed to the request, not copied again). */
  contents(): Buffer {
    return this.buf!.subarray(0, this.length);
  }

  release(): void {
    if (this.reserved > 0) this.budget.give(this.reserved);
    this.reserved = 0;
    this.buf = undefined;
  }
}
