import { IndexedHeap } from './indexed-heap.js';

/**
 * Requests waiting for room, per key (the router's key is the model), as pure logic with the
 * clock passed in: higher priority first, first come first served within a priority. Bounded in
 * count per key and in bytes for all keys together. Every waiter has the same timeout, so the order
 * of arrival is the order of deadlines: one list, oldest first, finds the expired ones without a
 * timer or a scan per waiter.
 */
export class Waiter<T> {
  /** Position in its key's heap (-1: not in it). */
  pos = -1;
  /** Waiting (in the queue's counts and arrival list), in its heap or held out of it for a moment. */
  waiting = false;
  held = false;
  /** Neighbours in the arrival (deadline) list. */
  prev: Waiter<T> | undefined = undefined;
  next: Waiter<T> | undefined = undefined;

  constructor(
    readonly value: T,
    readonly key: string | undefined,
    readonly priority: number,
    /** Arrival number: the order within a priority. */
    readonly seq: number,
    readonly enqueuedAt: number,
    readonly bytes: number,
  ) {}
}

export interface WaitQueueLimits {
  /** Waiters per key at most (0: nothing waits). */
  maxPerKey: number;
  /** Bytes of all waiters together at most (one waiter alone may exceed it). */
  maxBytes: number;
  timeoutMs: number;
}

/** Why a request was not let in: its key's queue has `maxPerKey` waiters, or the bytes are spent. */
export type Refusal = 'full' | 'bytes';

/** Whether `a` is served before `b`: higher priority, then earlier arrival (also across keys). */
export const servedBefore = <T>(a: Waiter<T>, b: Waiter<T>): boolean => a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq);
const before = servedBefore;
const getPos = <T>(w: Waiter<T>): number => w.pos;
const setPos = <T>(w: Waiter<T>, i: number): void => {
  w.pos = i;
};

export class WaitQueue<T> {
  private readonly heaps = new Map<string | undefined, IndexedHeap<Waiter<T>>>();
  /** Waiters per key, held ones included. */
  private readonly counts = new Map<string | undefined, number>();
  private oldest: Waiter<T> | undefined = undefined;
  private newest: Waiter<T> | undefined = undefined;
  private seq = 0;
  /** Waiters of every key. */
  length = 0;
  bytes = 0;

  constructor(readonly limits: WaitQueueLimits) {}

  /** Lets `value` wait under `key`, or says why not. A priority that is not a finite number counts as 0. */
  offer(value: T, key: string | undefined, priority: number | undefined, bytes: number, now: number): Waiter<T> | Refusal {
    if (this.lengthOf(key) >= this.limits.maxPerKey) return 'full';
    if (this.length > 0 && this.bytes + bytes > this.limits.maxBytes) return 'bytes';
    const w = new Waiter(value, key, priority !== undefined && Number.isFinite(priority) ? priority : 0, ++this.seq, now, bytes);
    this.heapOf(key).push(w);
    w.waiting = true;
    this.counts.set(key, this.lengthOf(key) + 1);
    w.prev = this.newest;
    if (this.newest !== undefined) this.newest.next = w;
    else this.oldest = w;
    this.newest = w;
    this.length++;
    this.bytes += bytes;
    return w;
  }

  /** The waiter of `key` to serve first. */
  peek(key: string | undefined): Waiter<T> | undefined {
    return this.heaps.get(key)?.top();
  }

  lengthOf(key: string | undefined): number {
    return this.counts.get(key) ?? 0;
  }

  /** Waiters per key ('' for the undefined key), keys with waiters only. */
  waitingByKey(): Array<[string, number]> {
    return [...this.counts].map(([key, n]) => [key ?? '', n]);
  }

  /** Keys with waiters. */
  keys(): IterableIterator<string | undefined> {
    return this.counts.keys();
  }

  private heapOf(key: string | undefined): IndexedHeap<Waiter<T>> {
    let heap = this.heaps.get(key);
    if (heap === undefined) this.heaps.set(key, (heap = new IndexedHeap<Waiter<T>>(before, getPos, setPos)));
    return heap;
  }

  private outOfHeap(w: Waiter<T>): void {
    const heap = this.heaps.get(w.key);
    if (heap === undefined) return;
    heap.remove(w);
    if (heap.size === 0) this.heaps.delete(w.key);
  }

  /** Takes `w` out of its key's order for a moment (it keeps waiting, and its place): `peek` looks past it. */
  hold(w: Waiter<T>): void {
    if (!w.waiting || w.held) return;
    this.outOfHeap(w);
    w.held = true;
  }

  /** Puts a held waiter back in its place. */
  unhold(w: Waiter<T>): void {
    if (!w.held) return;
    w.held = false;
    if (w.waiting) this.heapOf(w.key).push(w);
  }

  /** Takes `w` out (served, gone, or expired); nothing if it is not waiting. */
  remove(w: Waiter<T>): void {
    if (!w.waiting) return;
    w.waiting = false;
    if (!w.held) this.outOfHeap(w);
    const n = this.lengthOf(w.key) - 1;
    if (n === 0) this.counts.delete(w.key);
    else this.counts.set(w.key, n);
    if (w.prev !== undefined) w.prev.next = w.next;
    else this.oldest = w.next;
    if (w.next !== undefined) w.next.prev = w.prev;
    else this.newest = w.prev;
    w.prev = w.next = undefined;
    this.length--;
    this.bytes -= w.bytes;
  }

  /** When the oldest waiter's wait ends (undefined: none waits). */
  nextDeadline(): number | undefined {
    return this.oldest === undefined ? undefined : this.oldest.enqueuedAt + this.limits.timeoutMs;
  }

  /** Takes out every waiter whose wait has ended by `now`, oldest first, and hands each to `expired`. */
  expire(now: number, expired: (w: Waiter<T>) => void): void {
    let w: Waiter<T> | undefined;
    while ((w = this.oldest) !== undefined && w.enqueuedAt + this.limits.timeoutMs <= now) {
      this.remove(w);
      expired(w);
    }
  }
}
