import { randomBytes } from 'node:crypto';
import type { ServiceView } from './record.js';

export type ChangeType = 'put' | 'delete' | 'health';

export interface ChangeEvent {
  index: number;
  type: ChangeType;
  service: ServiceView;
}

export type ChangeListener = (event: ChangeEvent) => void;

/**
 * Numbered history of changes with a bounded backlog. A watcher that asks for changes after an
 * index older than the backlog (or from a future index, e.g. after a memory-only restart) must
 * list again: `since()` answers `'reset'` then.
 */
export class ChangeFeed {
  /**
   * Names this run of the feed. Indexes continue from the state file after a restart, but events
   * that were never saved (health flips) get their indexes again with other changes: a watcher
   * that names the epoch it listed in is told to list again instead of missing those changes.
   */
  readonly epoch = randomBytes(6).toString('hex');
  private readonly history: ChangeEvent[] = [];
  private readonly listeners = new Set<ChangeListener>();
  private current: number;
  /** Events appended by this run, by type (for metrics). */
  readonly appended: Record<ChangeType, number> = { put: 0, delete: 0, health: 0 };

  constructor(
    startIndex = 0,
    private readonly capacity = 4096,
  ) {
    this.current = startIndex;
  }

  get index(): number {
    return this.current;
  }

  append(type: ChangeType, service: ServiceView): ChangeEvent {
    const event: ChangeEvent = { index: ++this.current, type, service };
    this.appended[type]++;
    this.history.push(event);
    // Trimmed in halves, not one event at a time (a splice moves the whole backlog).
    if (this.history.length >= 2 * this.capacity) this.history.splice(0, this.history.length - this.capacity);
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** Events after `index`, or 'reset' if they are no longer (or never were) in the backlog. */
  since(index: number): ChangeEvent[] | 'reset' {
    if (index > this.current) return 'reset';
    if (index === this.current) return [];
    const first = Math.max(0, this.history.length - this.capacity);
    const oldest = this.history[first];
    if (!oldest || index < oldest.index - 1) return 'reset';
    return this.history.slice(first + index - oldest.index + 1);
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const frames = new WeakMap<ChangeEvent, Buffer>();

/** An event as one Server-Sent Events frame, serialised once and shared by every watcher. */
export function sseFrame(event: ChangeEvent): Buffer {
  let frame = frames.get(event);
  if (!frame) {
    frame = Buffer.from(`id: ${event.index}\ndata: ${JSON.stringify(event)}\n\n`);
    frames.set(event, frame);
  }
  return frame;
}
