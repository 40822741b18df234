/**
 * Runs a small ES module snippet in a child Node process, for what only a whole process shows:
 * signals, exit codes, a parent's death. The snippet imports the compiled code (`distModule`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './services.js';

export interface ModuleChild {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The import specifier (a JSON string) of a compiled module of src/common. */
export const distModule = (file: string): string => JSON.stringify(join(ROOT, 'dist', 'src', 'common', file));

/** Starts `code` with LOG_LEVEL=info and `env` on top; `pipeFd3` adds a pipe as descriptor 3. */
export function runModule(code: string, opts: { env?: Record<string, string | undefined>; pipeFd3?: boolean } = {}): ModuleChild {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: opts.pipeFd3 ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info', ...opts.env },
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d));
  proc.stderr!.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return { proc, out: () => out, err: () => err, exited };
}
