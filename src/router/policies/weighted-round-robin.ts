import { IndexedHeap } from '../indexed-heap.js';
import type { Backend } from '../backend.js';
import type { Group, Member } from '../backend-pool.js';
import type { RequestInfo } from '../request-info.js';
import type { Policy } from './policy.js';

/** Past this product of step count and weight the offsets are folded back (doubles stay exact below 2^53). */
const FOLD_AT = 2 ** 40;

// one function object each for every heap (a call site that sees many closures stops being inlined)
const higher = (a: Member, b: Member): boolean => a.rr > b.rr || (a.rr === b.rr && a.backend.name < b.backend.name);
const getPos = (m: Member): number => m.rrPos;
const setPos = (m: Member, i: number): void => {
  m.rrPos = i;
};

/** Members of one weight in a class: the highest offset first, then the first name. */
class Bucket {
  readonly heap = new IndexedHeap<Member>(higher, getPos, setPos);
  constructor(readonly weight: number) {}
}

/**
 * Smooth weighted round robin of one class sub-pool, without touching every member per request.
 * The classic step adds each candidate's weight to its current weight, picks the highest current
 * weight (the first by name on ties) and takes the total weight off it. Here a step counter `T`
 * stands for the additions: a member's current weight is `weight * T + rr`, so one step is `T++`
 * and only the chosen member's `rr` changes. Members of equal weight keep their order as T grows,
 * so each weight has a heap and a step compares the tops of the (few) distinct weights:
 * O(D + log K) per request, D the number of distinct weights in the class.
 */
export class RoundRobinState {
  /** Steps taken (reset by folding). */
  t = 0;
  /** Sum of the weights of the routable members with weight > 0. */
  total = 0;
  /** Routable members with weight > 0. */
  positives = 0;
  readonly buckets: Bucket[] = [];
  private readonly byWeight = new Map<number, Bucket>();
  private maxWeight = 0;

  add(m: Member): void {
    const w = m.backend.weight;
    if (w <= 0) return;
    let bucket = this.byWeight.get(w);
    if (!bucket) {
      bucket = new Bucket(w);
      this.byWeight.set(w, bucket);
      this.buckets.push(bucket);
      if (w > this.maxWeight) this.maxWeight = w;
    }
    m.rr -= w * this.t;
    bucket.heap.push(m);
    this.total += w;
    this.positives++;
  }

  remove(m: Member): void {
    const w = m.backend.weight;
    if (w <= 0) return;
    const bucket = this.byWeight.get(w)!;
    bucket.heap.remove(m);
    m.rr += w * this.t;
    this.total -= w;
    this.positives--;
    if (bucket.heap.size === 0) {
      this.byWeight.delete(w);
      this.buckets.splice(this.buckets.indexOf(bucket), 1);
      if (w === this.maxWeight) this.maxWeight = this.buckets.reduce((max, b) => Math.max(max, b.weight), 0);
    }
  }

  /** One step: every member gains its weight. */
  advance(): void {
    this.t++;
    if (this.t * this.maxWeight >= FOLD_AT) this.fold();
  }

  /** The member with the highest current weight (first by name on ties), and that weight. */
  best(): Member | undefined {
    let best: Member | undefined;
    let bestCurrent = -Infinity;
    for (const bucket of this.buckets) {
      const m = bucket.heap.top()!;
      const current = bucket.weight * this.t + m.rr;
      if (current > bestCurrent || (current === bestCurrent && m.backend.name < best!.backend.name)) {
        best = m;
        bestCurrent = current;
      }
    }
    return best;
  }

  current(m: Member): number {
    return m.backend.weight * this.t + m.rr;
  }

  /** Takes `amount` off a member's current weight. */
  lower(m: Member, amount: number): void {
    m.rr -= amount;
    this.byWeight.get(m.backend.weight)!.heap.update(m);
  }

  /** Moves T into the offsets (rarely: once per 2^40 / max weight steps). */
  private fold(): void {
    for (const bucket of this.buckets) for (const m of bucket.heap.items) m.rr += bucket.weight * this.t;
    this.t = 0;
  }
}

/**
 * Smooth weighted round robin (as nginx does it), with a separate rotation per model so that
 * traffic for one model never skews another's (the original shared one counter). Weight 0 means
 * "never", unless every candidate has weight 0, which falls back to plain rotation. Candidates that
 * are not routable (or excluded by a retry) keep their current weight and gain nothing meanwhile.
 */
export class WeightedRoundRobin implements Policy {
  readonly name: string = 'round-robin';
  /** Plain rotation per model, for candidates that all have weight 0. */
  private readonly plain = new Map<string, number>();

  select(group: Group, _info: RequestInfo): Backend | undefined {
    const list = group.list;
    const n = list.length;
    if (n <= 1) return list[0];
    const classes = group.classes;
    let positives = 0;
    for (let i = 0; i < classes.length; i++) positives += classes[i]!.rr?.positives ?? 0;
    if (positives === 0) {
      const key = group.pool.model ?? '';
      const i = this.plain.get(key) ?? 0;
      this.plain.set(key, i + 1);
      return list[i % n];
    }
    if (classes.length === 1) {
      const state = classes[0]!.rr!;
      state.advance();
      const best = state.best()!;
      state.lower(best, state.total);
      return best.backend;
    }
    // candidates from several classes (the whole model): one step over all of them
    let best: Member | undefined;
    let bestState: RoundRobinState | undefined;
    let bestCurrent = -Infinity;
    let total = 0;
    for (let i = 0; i < classes.length; i++) {
      const state = classes[i]!.rr;
      if (!state || state.positives === 0) continue;
      state.advance();
      total += state.total;
      const m = state.best()!;
      const current = state.current(m);
      if (current > bestCurrent || (current === bestCurrent && m.backend.name < best!.backend.name)) {
        best = m;
        bestState = state;
        bestCurrent = current;
      }
    }
    bestState!.lower(best!, total);
    return best!.backend;
  }

  attach(m: Member): void {
    (m.cls.rr ??= new RoundRobinState()).add(m);
  }

  detach(m: Member): void {
    m.cls.rr!.remove(m);
  }
}
