/**
 * Where the keys come from: `--api-keys FILE` and/or INFINI_API_KEYS, loaded at start (a bad file
 * stops the router there) and reloaded when the file changes (its mtime, size or inode, polled
 * every second: works on every filesystem and with editors that replace the file) or on SIGHUP.
 * A reload that fails keeps the keys in use and logs why; one that succeeds swaps the whole set,
 * so a revoked key is refused from the next request on. Connections are never touched.
 */
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from '../../common/log.js';
import { KeySet } from './api-keys.js';
import { formatOf, KeyFileError, keyConfigOf, mergeKeyConfigs, parseKeyEnv, parseKeyFile, type KeyConfig } from './key-file.js';

export const KEYS_ENV = 'INFINI_API_KEYS';
/**
 * Set by `infini-svc up` for its router: the SHA-256 of a key up made for itself (admin scope, to
 * wait for backends and list models). Added only when keys are configured otherwise: it never
 * closes an open router.
 */
export const LAUNCHER_KEY_ENV = 'INFINI_ROUTER_LAUNCHER_KEY_SHA256';

export interface KeySourceOptions {
  file: string | undefined;
  envText: string | undefined;
  launcherSha256?: string | undefined;
  log: Logger;
  /** Poll period of the file (ms; 0: not polled, SIGHUP only). */
  pollMs?: number;
}

/** Whether keys are configured at all (else the router stays open). */
export function keysConfigured(file: string | undefined, envText: string | undefined): boolean {
  return (file !== undefined && file !== '') || (envText !== undefined && envText.trim() !== '');
}

/** Reads and merges every source; throws KeyFileError (or a read error, worded). */
export function loadKeyConfig(opts: Pick<KeySourceOptions, 'file' | 'envText' | 'launcherSha256'>): KeyConfig {
  const parts: Array<{ config: KeyConfig; source: string }> = [];
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new KeyFileError(`api key file ${opts.file}: ${e.code === 'ENOENT' ? 'not found' : e.message}`);
    }
    parts.push({ config: parseKeyFile(text, formatOf(opts.file), `api key file ${opts.file}`), source: `api key file ${opts.file}` });
  }
  if (opts.envText !== undefined && opts.envText.trim() !== '') parts.push({ config: parseKeyEnv(opts.envText, KEYS_ENV), source: KEYS_ENV });
  if (opts.launcherSha256) parts.push({ config: keyConfigOf({ keys: [{ name: 'up', key_sha256: opts.launcherSha256, scope: 'admin' }] }, LAUNCHER_KEY_ENV), source: LAUNCHER_KEY_ENV });
  return mergeKeyConfigs(parts);
}

export class KeySource {
  current: KeySet;
  private readonly listeners: Array<(keys: KeySet) => void> = [];
  private watching = false;
  private readonly onSighup = () => this.reload('SIGHUP');

  constructor(private readonly opts: KeySourceOptions) {
    this.current = this.build();
    const missing = this.current.missingBackendEnv();
    if (missing.length > 0) opts.log.warn({ env: missing }, 'backend_key_env names variables that are not set: those backends get no key');
  }

  private build(): KeySet {
    return new KeySet(loadKeyConfig(this.opts));
  }

  onChange(fn: (keys: KeySet) => void): void {
    this.listeners.push(fn);
  }

  /** Loads again; on failure keeps the current keys and logs the problem. */
  reload(reason: string): boolean {
    let next: KeySet;
    try {
      next = this.build();
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message, reason }, 'api keys not reloaded: keeping the previous keys');
      return false;
    }
    this.current = next;
    for (const fn of this.listeners) fn(next);
    this.opts.log.info({ keys: next.size, reason }, 'api keys reloaded');
    return true;
  }

  /** Starts following the file and SIGHUP. */
  watch(sighup = true): void {
    if (this.watching) return;
    this.watching = true;
    const file = this.opts.file;
    if (file && this.opts.pollMs !== 0) {
      watchFile(file, { interval: this.opts.pollMs ?? 1000, persistent: false }, (cur: Stats, prev: Stats) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) this.reload('file changed');
      });
    }
    if (sighup) process.on('SIGHUP', this.onSighup);
  }

  close(): void {
    if (!this.watching) return;
    this.watching = false;
    if (this.opts.file && this.opts.pollMs !== 0) unwatchFile(this.opts.file);
    process.off('SIGHUP', this.onSighup);
  }
}
