/**
 * Throwaway certificates for the TLS tests and the benchmark, made with the openssl command when
 * they run (nothing secret or expiring is committed): one CA, and server certificates it signs for
 * 127.0.0.1 and localhost. ECDSA P-256, the usual choice for a web server today.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TlsPair {
  cert: string;
  key: string;
}

export interface TestCa {
  dir: string;
  /** The CA certificate (PEM): what a client is told to trust. */
  caFile: string;
  /** A new server certificate and key for 127.0.0.1 / localhost, files named after `name`. */
  issue(name: string): TlsPair;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A CA in `dir` (a new temporary directory by default); valid for two days. */
export function makeTestCa(dir = mkdtempSync(join(tmpdir(), 'infini-tls-'))): TestCa {
  openssl(['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=infini-svc test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    issue(name: string): TlsPair {
      openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`, '-days', '2', '-extfile', 'server.ext', '-out', `${name}.pem`], dir);
      return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    },
  };
}
