/**
 * A binary heap whose items know their own position (kept by `setPos`/`getPos`), so that any item
 * can be removed or re-sorted after its key changed in O(log n), not only the top.
 */
export class IndexedHeap<T> {
  readonly items: T[] = [];

  constructor(
    /** Whether `a` belongs above `b`. */
    private readonly before: (a: T, b: T) => boolean,
    private readonly getPos: (item: T) => number,
    private readonly setPos: (item: T, pos: number) => void,
  ) {}

  get size(): number {
    return this.items.length;
  }

  top(): T | undefined {
    return this.items[0];
  }

  has(item: T): boolean {
    const i = this.getPos(item);
    return i >= 0 && this.items[i] === item;
  }

  push(item: T): void {
    this.items.push(item);
    this.up(this.items.length - 1, item);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  remove(item: T): void {
    const i = this.getPos(item);
    if (i < 0 || this.items[i] !== item) return;
    this.setPos(item, -1);
    const last = this.items.pop()!;
    if (i === this.items.length) return;
    this.items[i] = last;
    this.setPos(last, i);
    this.update(last);
  }

  /** Restores the order after `item`'s key changed (either way). */
  update(item: T): void {
    const i = this.getPos(item);
    if (i < 0) return;
    if (i > 0 && this.before(item, this.items[(i - 1) >> 1]!)) this.up(i, item);
    else this.down(i, item);
  }

  private up(i: number, item: T): void {
    const items = this.items;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = items[p]!;
      if (!this.before(item, parent)) break;
      items[i] = parent;
      this.setPos(parent, i);
      i = p;
    }
    items[i] = item;
    this.setPos(item, i);
  }

  private down(i: number, item: T): void {
    const items = this.items;
    const n = items.length;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.before(items[c + 1]!, items[c]!)) c++;
      const child = items[c]!;
      if (!this.before(child, item)) break;
      items[i] = child;
      this.setPos(child, i);
      i = c;
    }
    items[i] = item;
    this.setPos(item, i);
  }
}
