import type { Logger } from '../common/log.js';
import { PeriodicTask } from '../common/periodic.js';
import type { UpConsole } from './console.js';
import { bearer, getJson } from '../common/get-json.js';
import { CRASH_LOOP_FAILURES, downReason, failureCount, seconds, toSitterInfo, type SitterInfo } from '../babysitter/info.js';

/** Lines of a failing engine's output shown with each failure. */
const TAIL_LINES = 5;
const MAX_LINE = 200;

/**
 * Lines of `next` that `prev` did not have. The babysitter keeps a bounded window of recent lines,
 * so `next` is a suffix of `prev` followed by new lines: the longest end of `prev` that starts
 * `next` is the overlap. Identical repeated output may hide new lines; then nothing seems new.
 */
export function newLines(prev: readonly string[], next: readonly string[]): string[] {
  for (let o = Math.min(prev.length, next.length); o > 0; o--) {
    let same = true;
    for (let i = 0; i < o && same; i++) same = prev[prev.length - o + i] === next[i];
    if (same) return next.slice(o);
  }
  return [...next];
}

/** The last few of these output lines, without the babysitter's stream prefixes. */
export function outputTail(recent: readonly string[], lines = TAIL_LINES): string[] {
  return recent
    .map((l) => l.replace(/^\[(stdout|stderr)\] /, ''))
    .filter((l) => l.trim() !== '')
    .slice(-lines)
    .map((l) => (l.length > MAX_LINE ? `${l.slice(0, MAX_LINE - 1)}…` : l));
}

export interface Report {
  message: string;
  detail: string[];
}

/** What a backend's watcher remembers between polls. */
export interface WatchState {
  info?: SitterInfo;
  everReady: boolean;
  /** The tail printed with the last failure, not to print the same lines again. */
  lastTail: string[];
}

export const newWatchState = (): WatchState => ({ everReady: false, lastTail: [] });

/**
 * The console lines for one poll: the first sight of a start, each new failure (with the engine's
 * last lines, once), becoming ready, giving up. Nothing when nothing changed, so polling every
 * second never repeats a line.
 */
export function changes(state: WatchState, next: SitterInfo): Report[] {
  // fewer failures than before: up restarted the babysitter itself, which counts afresh
  const prev = state.info && failureCount(next) >= failureCount(state.info) ? state.info : undefined;
  const out: Report[] = [];
  const before = prev ? failureCount(prev) : 0;
  const now = failureCount(next);
  if (!prev && next.state === 'starting' && now === 0) out.push({ message: 'starting backend', detail: [] });
  if (now > before) {
    // the output since the last poll: the failed attempt's, not earlier ones'
    const reason = downReason(next);
    const tail = outputTail(newLines(prev?.recent_logs ?? [], next.recent_logs)).filter((l) => !(l.startsWith('[babysitter] ') && reason.endsWith(l.slice('[babysitter] '.length))));
    // nothing but lines already shown (a crash loop printing the same error each time)
    const shown = new Set(state.lastTail);
    const same = tail.length > 0 && tail.every((l) => shown.has(l));
    const missed = now - before > 1 ? ` (${now - before} failures since the last report)` : '';
    const what =
      next.state === 'failed'
        ? `failed for good after ${next.restart_count} restarts (${reason})`
        : next.state === 'backoff'
          ? `${reason}; restart ${next.restart_count + 1} in ${seconds(next.next_start_in_s)}`
          : `${reason}; restarted (attempt ${next.restart_count + 1})`;
    out.push({ message: `${what}${missed}${same ? '; same output as before' : tail.length ? '; its last output:' : ''}`, detail: same ? [] : tail });
    if (tail.length) state.lastTail = tail;
  }
  if (next.state === 'not-ready' && prev?.state !== 'not-ready') {
    out.push({ message: `not ready: ${next.not_ready_reason ?? 'readiness probe failed'}; no new requests until it answers again`, detail: [] });
  }
  if (next.state === 'ready' && prev?.state === 'not-ready') {
    out.push({ message: 'answers again: routable', detail: [] });
  } else if (next.state === 'ready' && prev?.state !== 'ready') {
    const attempt = next.restart_count > 0 ? ` (attempt ${next.restart_count + 1})` : '';
    out.push({ message: `ready${attempt}: ${next.models.join(', ') || 'no models listed'}`, detail: [] });
    state.everReady = true;
  }
  state.info = next;
  return out;
}

/** Whether waiting longer for this backend is pointless: it never came up and keeps failing, or gave up. */
export function crashLooping(state: WatchState): boolean {
  const info = state.info;
  if (!info) return false;
  return info.state === 'failed' || (!state.everReady && info.state !== 'ready' && failureCount(info) >= CRASH_LOOP_FAILURES);
}

/** Polls every babysitter's /info and reports each backend's changes on the console as they happen. */
export class BackendWatch {
  private readonly states = new Map<string, WatchState>();
  private readonly task: PeriodicTask;
  private last: Promise<void> = Promise.resolve();

  constructor(
    private readonly sitters: Array<{ name: string; infoUrl: string }>,
    private readonly out: UpConsole,
    log: Logger,
    intervalMs = 1000,
  ) {
    for (const s of sitters) this.states.set(s.name, newWatchState());
    this.task = new PeriodicTask('babysitter watch', () => this.poll(), intervalMs, log);
  }

  start(): void {
    this.task.start({ immediately: true });
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  state(name: string): WatchState | undefined {
    return this.states.get(name);
  }

  /** One round of polls; rounds never overlap (a state must not be compared with itself twice). */
  poll(): Promise<void> {
    const round = this.last.then(() => this.pollOnce());
    this.last = round.catch(() => undefined);
    return round;
  }

  private async pollOnce(): Promise<void> {
    await Promise.all(
      this.sitters.map(async (s) => {
        const info = toSitterInfo((await getJson(s.infoUrl, undefined, bearer(process.env.INFINI_REGISTRY_TOKEN)))?.body);
        const state = this.states.get(s.name);
        if (!info || !state) return;
        for (const r of changes(state, info)) this.out.say(s.name, r.message, r.detail);
      }),
    );
  }
}
