import type { Logger } from '../common/log.js';
import { PeriodicTask } from '../common/periodic.js';
import type { UpConsole } from './console.js';
import { getJson } from './http.js';

/** The fields of a babysitter's GET /info that `up` reports. */
export interface SitterInfo {
  state: string;
  restart_count: number;
  last_down_reason: string | null;
  last_exit_code: number | null;
  last_exit_signal: string | null;
  next_start_in_s: number | null;
  /** Why a running backend failed its readiness probe (state `not-ready`). */
  not_ready_reason: string | null;
  models: string[];
  recent_logs: string[];
}

/** Failed starts after which a backend that was never ready counts as crash-looping. */
export const CRASH_LOOP_FAILURES = 3;
/** Lines of a failing engine's output shown with each failure. */
const TAIL_LINES = 5;
const MAX_LINE = 200;

/** Reads /info defensively: another version of the babysitter may lack a field. */
export function toSitterInfo(body: unknown): SitterInfo | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  if (typeof b.state !== 'string') return undefined;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    state: b.state,
    restart_count: num(b.restart_count) ?? 0,
    last_down_reason: str(b.last_down_reason),
    last_exit_code: num(b.last_exit_code),
    last_exit_signal: str(b.last_exit_signal),
    next_start_in_s: num(b.next_start_in_s),
    not_ready_reason: str(b.not_ready_reason),
    models: Array.isArray(b.models) ? b.models.filter((m): m is string => typeof m === 'string') : [],
    recent_logs: Array.isArray(b.recent_logs) ? b.recent_logs.filter((l): l is string => typeof l === 'string') : [],
  };
}

/**
 * Failed starts so far. Each failure puts the backend in backoff (or failed, at the restart limit),
 * and leaving backoff counts a restart, so this grows by exactly one per failure whichever state a
 * poll happens to see.
 */
export function failureCount(info: SitterInfo): number {
  return info.restart_count + (info.state === 'backoff' || info.state === 'failed' ? 1 : 0);
}

/** Why the backend last went down: `crashed: exit 1`, `crashed: SIGKILL`, `hung`, `spawn failed: ...`. */
export function downReason(info: SitterInfo): string {
  const reason = info.last_down_reason ?? 'down';
  if (reason === 'crashed' || reason === 'exited') {
    if (info.last_exit_code !== null) return `${reason}: exit ${info.last_exit_code}`;
    if (info.last_exit_signal) return `${reason}: ${info.last_exit_signal}`;
  }
  if (reason === 'spawn failed') {
    // the babysitter records the spawn error (ENOENT: the program is not installed) as a line
    const err = [...info.recent_logs].reverse().find((l) => l.startsWith('[babysitter] '));
    if (err) return `spawn failed: ${err.slice('[babysitter] '.length)}`;
  }
  return reason;
}

const seconds = (s: number | null) => {
  const v = Math.max(0, s ?? 0);
  return `${v < 10 ? Math.round(v * 10) / 10 : Math.round(v)} s`;
};

/** The STATE column: the state, and for a backend that failed, why and what happens next. */
export function describeState(info: SitterInfo): string {
  const failures = failureCount(info);
  switch (info.state) {
    case 'backoff':
      return `backoff (${downReason(info)}, restart ${info.restart_count + 1} in ${seconds(info.next_start_in_s)})`;
    case 'failed':
      return `failed (${downReason(info)}; gave up after ${info.restart_count} restarts)`;
    case 'starting':
      return failures === 0 ? 'starting' : `starting (attempt ${info.restart_count + 1}; last: ${downReason(info)})`;
    case 'not-ready':
      return `not-ready (${info.not_ready_reason ?? 'readiness probe failed'})`;
    default:
      return info.state;
  }
}

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
        const info = toSitterInfo((await getJson(s.infoUrl))?.body);
        const state = this.states.get(s.name);
        if (!info || !state) return;
        for (const r of changes(state, info)) this.out.say(s.name, r.message, r.detail);
      }),
    );
  }
}
