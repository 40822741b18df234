import { startParentWatchFromEnv } from './parent-watch.js';

/** A user error on the command line or in a config file: printed as one line, exit status 2. */
export class UsageError extends Error {}

/**
 * Runs a command's main function, turning UsageError into one line on stderr and exit status 2.
 * A process started by a supervisor that watches for its death (INFINI_PARENT_FD) stops with it.
 */
export async function runCommand(name: string, main: () => Promise<void>): Promise<void> {
  startParentWatchFromEnv();
  try {
    await main();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`${name}: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  }
}
