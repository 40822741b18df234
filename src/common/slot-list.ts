/** What a SlotList stores: the item's index in the list, -1 while it is not in one. */
export interface Slotted {
  slot: number;
}

/**
 * An unordered set of objects with O(1) add and remove by swapping the last item into the gap:
 * per-request membership (in-flight attempts, busy connections) without hashing on the hot path.
 */
export class SlotList<T extends Slotted> {
  readonly items: T[] = [];

  get length(): number {
    return this.items.length;
  }

  add(item: T): void {
    item.slot = this.items.push(item) - 1;
  }

  /** False if `item` was not in the list. */
  remove(item: T): boolean {
    const i = item.slot;
    if (i < 0 || this.items[i] !== item) return false;
    item.slot = -1;
    const last = this.items.pop()!;
    if (last !== item) {
      this.items[i] = last;
      last.slot = i;
    }
    return true;
  }

  /**
   * Calls `fn` for every item, from the last to the first, so that `fn` may remove the item it is
   * given (the last one moves into its slot, already visited) or add new ones (not visited).
   */
  forEachBackwards(fn: (item: T) => void): void {
    for (let i = this.items.length - 1; i >= 0; i--) {
      const item = this.items[i];
      if (item !== undefined) fn(item);
    }
  }
}
