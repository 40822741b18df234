import type { Logger } from './log.js';

/** The graceful stop registered by onStopSignals in this process, for requestShutdown. */
let registered: ((reason: string) => void) | undefined;

/**
 * Begins the registered graceful stop as a first signal would (a no-op while already stopping);
 * false when no stop is registered yet. Used by the parent-death watch (parent-watch.ts).
 */
export function requestShutdown(reason: string): boolean {
  if (!registered) return false;
  registered(reason);
  return true;
}

export interface StopActions {
  /** The graceful stop, begun once: by the first SIGINT or SIGTERM, or for another reason. */
  graceful: (reason: string) => void;
  /** A second signal: stop at once (it should end the process). */
  immediate: (signal: NodeJS.Signals) => void;
}

/**
 * The stop rule of every process here: the first SIGINT or SIGTERM begins the graceful stop, a
 * second one stops at once, so an operator can always get their terminal back. The returned
 * function (also what requestShutdown calls) begins the graceful stop for another reason (a
 * parent's death, a router primary's message); it does nothing while stopping and never counts as
 * a signal, so it can neither cut a stop short nor make the next signal the second.
 */
export function onStopSignals(actions: StopActions): (reason: string) => void {
  let stopping = false;
  let signals = 0;
  const begin = (reason: string) => {
    if (stopping) return;
    stopping = true;
    actions.graceful(reason);
  };
  const handler = (signal: NodeJS.Signals) => {
    if (++signals >= 2) actions.immediate(signal);
    else begin(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  registered = begin;
  return begin;
}

/**
 * onStopSignals for a service: runs `stop` once, then exits 0 (1 if it failed); a second signal
 * exits at once with status 130.
 */
export function onShutdownSignal(log: Logger, stop: (reason: string) => Promise<void>): (reason: string) => void {
  return onStopSignals({
    graceful: (reason) => {
      log.info({ reason }, 'shutting down');
      stop(reason).then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'error during shutdown');
          process.exit(1);
        },
      );
    },
    immediate: (signal) => {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    },
  });
}
