import type { Logger } from './log.js';

/** The stop registered by onShutdownSignal (or registerShutdown) in this process, for requestShutdown. */
let registered: ((reason: string) => void) | undefined;

/** For a process with signal handling of its own (a router primary): what requestShutdown starts. */
export function registerShutdown(stop: (reason: string) => void): void {
  registered = stop;
}

/**
 * Begins the registered graceful stop as a first signal would (a no-op while already stopping);
 * false when no stop is registered yet. Used by the parent-death watch (parent-watch.ts).
 */
export function requestShutdown(reason: string): boolean {
  if (!registered) return false;
  registered(reason);
  return true;
}

/**
 * Runs `stop` once on the first SIGINT or SIGTERM, then exits 0. A second signal while stopping
 * exits at once (status 130), so an operator can always get their terminal back. The returned
 * function starts the same graceful stop for other reasons (a message from a cluster primary);
 * calling it while already stopping does nothing.
 */
export function onShutdownSignal(log: Logger, stop: (reason: string) => Promise<void>): (reason: string) => void {
  let stopping = false;
  let signals = 0;
  const begin = (reason: string) => {
    stopping = true;
    log.info({ reason }, 'shutting down');
    stop(reason).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  const handler = (signal: NodeJS.Signals) => {
    // only a second *signal* forces: a stop begun by a message (cluster primary) still drains
    if (++signals >= 2) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    if (!stopping) begin(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  registered = (reason: string) => {
    if (!stopping) begin(reason);
  };
  return registered;
}
