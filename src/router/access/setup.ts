/** The router's wiring of API keys, in one place: cli.ts calls these and nothing else of access/. */
import cluster from 'node:cluster';
import { UsageError } from '../../common/command.js';
import type { Logger } from '../../common/log.js';
import type { RouterErrors } from '../errors.js';
import { AccessGate, CLIENT_KEY_HEADERS, LocalLimits, type AccessGateOptions } from './gate.js';
import { KeyFileError } from './key-file.js';
import { KEYS_ENV, KeySource, LAUNCHER_KEY_ENV, keysConfigured, loadKeyConfig } from './key-source.js';
import { onPrimaryReload, serveSharedLimits, SharedLimits } from './shared-limits.js';

export interface AccessSettings {
  file: string | undefined;
  /** Poll period of the file (0: SIGHUP only). */
  pollSeconds: number;
  env: NodeJS.ProcessEnv;
  metricsAuth: boolean;
}

const sources = (s: AccessSettings) => ({ file: s.file, envText: s.env[KEYS_ENV], launcherSha256: s.env[LAUNCHER_KEY_ENV] });

/** A bad key file stops the router at start, worded as a usage error. */
function startupError(err: unknown): never {
  if (err instanceof KeyFileError) throw new UsageError(err.message);
  throw err;
}

/** In the primary of --workers: checks the keys before forking, then keeps the shared limits. */
export function startPrimaryAccess(s: AccessSettings, log: Logger): void {
  const src = sources(s);
  if (!keysConfigured(src.file, src.envText)) return;
  try {
    loadKeyConfig(src);
  } catch (err) {
    startupError(err);
  }
  serveSharedLimits(log);
}

export interface RouterAccess {
  gate: AccessGate;
  /** For the forwarder: the client's key never goes to a backend; a backend's own may. */
  forwarding: { stripHeaders: ReadonlySet<string>; backendLine: AccessGate['backendLine'] };
  close(): void;
}

/** The gate, or undefined when no keys are configured (the router stays open, and says so once). */
export function startAccess(
  s: AccessSettings,
  opts: { errors: RouterErrors; log: Logger } & Pick<AccessGateOptions, 'forward' | 'refuse'>,
): RouterAccess | undefined {
  const src = sources(s);
  if (!keysConfigured(src.file, src.envText)) {
    if (cluster.isPrimary || cluster.worker?.id === 1) opts.log.info(`no API keys configured (--api-keys, ${KEYS_ENV}): the router is open to every client`);
    return undefined;
  }
  let source: KeySource;
  try {
    source = new KeySource({ ...src, log: opts.log, pollMs: s.pollSeconds * 1000 });
  } catch (err) {
    startupError(err);
  }
  const keeper = cluster.isWorker ? new SharedLimits() : new LocalLimits();
  const gate = new AccessGate({ source, keeper, errors: opts.errors, metricsAuth: s.metricsAuth, forward: opts.forward, refuse: opts.refuse });
  source.watch();
  if (cluster.isWorker) onPrimaryReload(() => source.reload('SIGHUP'));
  const admins = source.current.config.keys.filter((k) => k.scope === 'admin' && k.name !== 'up').length;
  opts.log.info({ keys: source.current.size, admin_keys: admins, file: src.file ?? null, env: src.envText !== undefined }, 'API keys required');
  return { gate, forwarding: { stripHeaders: CLIENT_KEY_HEADERS, backendLine: gate.backendLine }, close: () => source.close() };
}
