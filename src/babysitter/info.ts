/**
 * A babysitter's GET /info as its clients read it (`up`'s console, `infini-svc status`, the router's
 * dashboard): the fields they show, read defensively, and how a state is put in words.
 */

/** The fields of a babysitter's GET /info that its clients show. */
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

/** `4.4 s`, `12 s`: a short wait as the console and tables show it. */
export const seconds = (s: number | null) => {
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

