import { readFileSync } from 'node:fs';
import { createSecureContext, type TlsOptions } from 'node:tls';
import { UsageError } from './command.js';
import type { Logger } from './log.js';
import type { Setting, Settings } from './settings.js';

/** A service's certificate and key files (PEM). */
export interface TlsFiles {
  cert: string;
  key: string;
}

/** The --tls-cert / --tls-key settings of a service that serves HTTPS. */
export function tlsSettings(what: string): Setting[] {
  return [
    { key: 'tls-cert', type: 'string', metavar: 'FILE', help: `serve HTTPS with this certificate (PEM, the chain after it); with --tls-key. SIGHUP reloads both files without dropping connections` },
    { key: 'tls-key', type: 'string', metavar: 'FILE', help: `private key (PEM) of --tls-cert for the ${what}` },
  ];
}

/** The CA file of a registry client (its --registry-url may be https://). */
export const registryCaSetting: Setting = {
  key: 'registry-ca',
  type: 'string',
  metavar: 'FILE',
  help: 'trust the CA certificates in this PEM file for an https:// --registry-url, besides the usual roots and NODE_EXTRA_CA_CERTS',
};

/** The pair given, or undefined for plain HTTP; one without the other is a usage error. */
export function tlsFilesOf(settings: Settings): TlsFiles | undefined {
  const cert = settings.optStr('tls-cert');
  const key = settings.optStr('tls-key');
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) throw new UsageError('--tls-cert and --tls-key go together: give both or neither');
  return { cert, key };
}

/** Reads the pair and checks it (PEM syntax, the key matches the certificate); throws naming the problem. */
function readPair(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
    }
  };
  const cert = read(files.cert, 'TLS certificate');
  const key = read(files.key, 'TLS key');
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`TLS certificate ${files.cert} with key ${files.key}: ${(err as Error).message}`);
  }
  return { cert, key };
}

/** TLS 1.2 and later only; HTTP/1.1 is the one protocol offered in ALPN. */
const SERVER_DEFAULTS = { minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] } as const;

/** Options of a TLS server for the pair; a bad pair at start is a usage error (the service does not start). */
export function serverTlsOptions(files: TlsFiles): TlsOptions {
  try {
    return { ...readPair(files), ...SERVER_DEFAULTS, ALPNProtocols: [...SERVER_DEFAULTS.ALPNProtocols] };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** What a reload replaces: tls.Server and https.Server both have it. */
interface Reloadable {
  setSecureContext(options: TlsOptions): void;
}

/**
 * Rereads the pair on every SIGHUP: new connections get it, open ones keep theirs. A pair that
 * cannot be read or does not match keeps the one in use (logged). Returns the reload itself.
 */
export function reloadOnHangup(server: Reloadable, files: TlsFiles, log: Logger): () => boolean {
  const reload = (): boolean => {
    try {
      server.setSecureContext({ ...readPair(files), minVersion: SERVER_DEFAULTS.minVersion });
      log.info({ cert: files.cert, key: files.key }, 'TLS certificate reloaded');
      return true;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'TLS certificate reload failed; keeping the previous one');
      return false;
    }
  };
  process.on('SIGHUP', () => void reload());
  return reload;
}
