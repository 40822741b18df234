/**
 * The dashboard's view of the traffic cells over time, kept off the request path: every SAMPLE_MS a
 * timer reads every cell once (O(cells)) and keeps
 * - per model, the last 10 minutes in SAMPLE_MS slots (requests, 5xx, 4xx, output tokens, TTFT buckets),
 *   for at most HISTORY_MODELS models (the rest add up under `other`), so a page opened now shows
 *   minutes at once;
 * - per backend, its cumulative figures at the last few WINDOW_STEP_MS boundaries, so "the last
 *   minute" is now minus the oldest of them: O(backends x a constant) memory for 10,000 backends.
 * Slots are numbered by wall-clock time (slot k covers [k, k+1) x SAMPLE_MS), so the samples of
 * several router workers add up slot by slot.
 */
import { LATENCY_BUCKETS, OTHER_MODEL, type BackendTraffic, type TrafficCell, type TrafficStats } from './traffic-stats.js';

export const SAMPLE_MS = 2000;
/** 10 minutes of slots. */
export const HISTORY_SLOTS = 300;
/** Models with a history of their own; further ones add up under `other`. */
export const HISTORY_MODELS = 32;
export const WINDOW_STEP_MS = 15_000;
/** Snapshots kept per backend: once full, the oldest is 60-75 s old. */
const WINDOW_SNAPSHOTS = 5;
/** Timers fire this long after a slot boundary, so the slot they close is unambiguous. */
const ALIGN_MS = 40;

/**
 * What is kept per cell, slot or backend, as one vector: the counts below, then TTFT bucket counts.
 * TTFT is the streamed requests' (first event), as infini_router_ttft_seconds{stream="true"}: a
 * whole answer's first byte is nearly its duration and would blur it.
 */
export const V_REQ = 0;
export const V_ERR = 1;
export const V_4XX = 2;
export const V_TOK = 3;
export const V_TTFT = 4;
export const V_LEN = V_TTFT + LATENCY_BUCKETS.length + 1;
/** Status class indexes (STATUS_CLASSES): an error is an answer the client got as 5xx; 4xx are the clients' own. */
const CLASS_5XX = 4;
const CLASS_4XX = 3;

function readCell(c: TrafficCell, out: Float64Array): void {
  out[V_REQ] = c.totalRequests;
  out[V_ERR] = c.requestsOfClass(CLASS_5XX);
  out[V_4XX] = c.requestsOfClass(CLASS_4XX);
  out[V_TOK] = c.outputTokens;
  out.set(c.ttft.counts, V_TTFT);
}

/** A vector as JSON: a plain array without its trailing zeros ([] when all zero). */
export function packVector(v: ArrayLike<number>, from = 0, to = v.length): number[] {
  let end = to;
  while (end > from && v[end - 1] === 0) end--;
  return Array.prototype.slice.call(v, from, end) as number[];
}

/** One router process's traffic as the dashboard needs it; plain JSON, so workers can send it to the primary. */
export interface TrafficPart {
  time: number;
  sampleMs: number;
  /** The oldest and newest slot sampled (NaN before the first sample: null in JSON). */
  firstSlot: number | null;
  lastSlot: number | null;
  /** Length of the backends' windows below (ms). */
  windowMs: number;
  /** Per model, its slots with traffic: `[slot, ...vector]` (vector packed). */
  models: Array<{ model: string; slots: number[][] }>;
  /** Per backend with traffic in its window ('' for the requests the router answered itself). */
  windows: Array<{ backend: string; ms: number; v: number[] }>;
}

class ModelHistory {
  readonly data = new Float64Array(HISTORY_SLOTS * V_LEN);
  newest = -Infinity;

  add(slot: number, delta: Float64Array): void {
    if (slot > this.newest) {
      for (let s = Math.max(this.newest + 1, slot - HISTORY_SLOTS + 1); s <= slot; s++) this.data.fill(0, (s % HISTORY_SLOTS) * V_LEN, (s % HISTORY_SLOTS + 1) * V_LEN);
      this.newest = slot;
    } else if (slot <= this.newest - HISTORY_SLOTS) {
      return;
    }
    const off = (slot % HISTORY_SLOTS) * V_LEN;
    for (let i = 0; i < V_LEN; i++) this.data[off + i]! += delta[i]!;
  }
}

/** After a cell's vector in `prev`: its duration and TTFT observation counts, to see cheaply that it did not change. */
const P_DURATIONS = V_LEN;
const P_TTFTS = V_LEN + 1;

export class TrafficSampler {
  /** Each cell's vector at the last sample (and P_* counts); cells of a forgotten backend go with it. */
  private readonly prev = new WeakMap<TrafficCell, Float64Array>();
  /** Each backend's cumulative vectors at the last WINDOW_SNAPSHOTS step boundaries. */
  private readonly snapshots = new WeakMap<BackendTraffic, Float64Array>();
  private readonly snapshotTimes = new Float64Array(WINDOW_SNAPSHOTS);
  private snapshotCount = 0;
  private lastStep = -1;
  private readonly history = new Map<string, ModelHistory>();
  private firstSlot = NaN;
  private lastSlot = NaN;
  private timer: NodeJS.Timeout | undefined;
  private readonly cur = new Float64Array(V_LEN);
  private readonly delta = new Float64Array(V_LEN);

  /** `stats` must be empty at `start` (the router's are: nothing is proxied before it listens). */
  constructor(
    readonly stats: TrafficStats,
    readonly sampleMs = SAMPLE_MS,
    start = Date.now(),
  ) {
    // the first snapshot is the start itself, with every count zero: traffic before the first sample counts
    this.snapshotTimes[0] = start;
    this.snapshotCount = 1;
    this.lastStep = Math.floor(start / WINDOW_STEP_MS);
  }

  /** Samples just after every slot boundary until stop(); the timer does not keep the process alive. */
  start(): void {
    const schedule = () => {
      this.timer = setTimeout(tick, this.sampleMs - (Date.now() % this.sampleMs) + ALIGN_MS);
      this.timer.unref();
    };
    const tick = () => {
      this.sample(Date.now());
      schedule();
    };
    schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Reads every cell once: what changed since the last sample goes to the slot ending near `now`. */
  sample(now: number): void {
    const slot = Math.round(now / this.sampleMs) - 1;
    const step = Math.floor(now / WINDOW_STEP_MS);
    const snap = step !== this.lastStep;
    const pos = this.snapshotCount % WINDOW_SNAPSHOTS;
    const { cur, delta } = this;
    for (const bt of this.stats.all()) {
      let ring: Float64Array | undefined;
      if (snap) {
        ring = this.snapshots.get(bt);
        if (ring === undefined) {
          // all zero: a backend first seen now had no traffic at the earlier boundaries
          ring = new Float64Array(WINDOW_SNAPSHOTS * V_LEN);
          this.snapshots.set(bt, ring);
        }
        ring.fill(0, pos * V_LEN, (pos + 1) * V_LEN);
      }
      for (const cell of bt.distinctCells()) {
        let p = this.prev.get(cell);
        if (p === undefined) {
          p = new Float64Array(V_LEN + 2);
          this.prev.set(cell, p);
        } else if (p[P_DURATIONS] === cell.duration.count && p[P_TTFTS] === cell.ttft.count && p[V_TOK] === cell.outputTokens) {
          // every finished request is timed: no new duration, TTFT or tokens, nothing new (the common case of 10,000 backends)
          if (ring !== undefined) for (let i = 0; i < V_LEN; i++) ring[pos * V_LEN + i]! += p[i]!;
          continue;
        }
        readCell(cell, cur);
        if (ring !== undefined) for (let i = 0; i < V_LEN; i++) ring[pos * V_LEN + i]! += cur[i]!;
        p[P_DURATIONS] = cell.duration.count;
        p[P_TTFTS] = cell.ttft.count;
        let changed = false;
        for (let i = 0; i < V_LEN; i++) {
          const d = cur[i]! - p[i]!;
          delta[i] = d;
          if (d !== 0) changed = true;
        }
        if (!changed) continue;
        p.set(cur);
        this.historyOf(cell.model).add(slot, delta);
      }
    }
    if (snap) {
      this.snapshotTimes[pos] = now;
      this.snapshotCount++;
      this.lastStep = step;
    }
    if (Number.isNaN(this.firstSlot)) this.firstSlot = slot;
    this.lastSlot = slot;
    for (const [model, h] of this.history) if (h.newest <= slot - HISTORY_SLOTS) this.history.delete(model);
  }

  private historyOf(model: string): ModelHistory {
    let h = this.history.get(model);
    if (h === undefined) {
      const label = this.history.size < HISTORY_MODELS ? model : OTHER_MODEL;
      h = this.history.get(label);
      if (h === undefined) {
        h = new ModelHistory();
        this.history.set(label, h);
      }
    }
    return h;
  }

  /** The history and every backend's last-minute figures, as of `now` (reads the cells once more). */
  part(now: number): TrafficPart {
    const models: TrafficPart['models'] = [];
    const from = Math.max(this.firstSlot, this.lastSlot - HISTORY_SLOTS + 1);
    for (const [model, h] of this.history) {
      const slots: number[][] = [];
      for (let s = Math.max(from, h.newest - HISTORY_SLOTS + 1); s <= h.newest; s++) {
        const off = (s % HISTORY_SLOTS) * V_LEN;
        const v = packVector(h.data, off, off + V_LEN);
        if (v.length > 0) slots.push([s, ...v]);
      }
      if (slots.length > 0) models.push({ model, slots });
    }
    const windows: TrafficPart['windows'] = [];
    const oldest = this.snapshotCount < WINDOW_SNAPSHOTS ? 0 : this.snapshotCount % WINDOW_SNAPSHOTS;
    const since = this.snapshotTimes[oldest]!;
    const sum = new Float64Array(V_LEN);
    for (const bt of this.stats.all()) {
      sum.fill(0);
      for (const cell of bt.distinctCells()) {
        readCell(cell, this.cur);
        for (let i = 0; i < V_LEN; i++) sum[i]! += this.cur[i]!;
      }
      const ring = this.snapshots.get(bt);
      if (ring !== undefined) for (let i = 0; i < V_LEN; i++) sum[i]! -= ring[oldest * V_LEN + i]!;
      const v = packVector(sum);
      if (v.length > 0) windows.push({ backend: bt.backend, ms: now - since, v });
    }
    const slot = (n: number) => (Number.isNaN(n) ? null : n);
    return { time: now, sampleMs: this.sampleMs, firstSlot: slot(this.firstSlot), lastSlot: slot(this.lastSlot), windowMs: now - since, models, windows };
  }
}
