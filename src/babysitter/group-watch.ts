/**
 * The parent-death watch of a backend group. Node cannot set PR_SET_PDEATHSIG and the backend is
 * an arbitrary program, so the group is started by a POSIX shell that forks a watcher into the
 * same group and then execs the backend (which keeps the shell's pid: /info `pid` and exit codes
 * stay the backend's). The watcher blocks reading fd 3, a socket whose other end only the
 * babysitter holds (opened close-on-exec, so no other child inherits it). However the babysitter
 * dies (SIGKILL, OOM killer, crash), the kernel closes its end, the read returns end-of-file, and
 * the watcher stops the group: SIGTERM, up to the stop grace for the backend to exit, then SIGKILL
 * to the group (itself included).
 *
 * The watcher keeps the default SIGTERM action until end-of-file, so the babysitter's own
 * SIGTERM to the group (a deliberate stop or restart) ends it at once and it never delays a stop.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

export const SHELL = '/bin/sh';

/**
 * Written for POSIX sh (dash, bash, busybox ash): `$$` in a subshell is the main shell's pid (the
 * backend after exec); `kill -TERM 0` signals the caller's group; `read` returns non-zero at end of
 * file; `sleep 0.1` falls back to whole seconds where sleep takes integers only. The backend is
 * gone when `kill -0` fails or it is a zombie nobody reaps (containers whose init does not reap).
 * The watcher is started from a subshell that exits at once (and is reaped before the exec), so it
 * is not a child of the backend: a backend never sees, waits for or kills a process it did not
 * start; the watcher stays in the group. Background lists of a non-interactive shell ignore
 * SIGINT/SIGQUIT; stdio goes to /dev/null so the watcher holds none of the babysitter's output
 * pipes. The pid file (if any) goes before the final SIGKILL: the babysitter that died cannot
 * remove it, and a new one writes its own only after this group is gone.
 */
export const WATCH_SCRIPT = `t=$1; f=$2; shift 2
( {
  read -r _ <&3
  trap '' TERM
  kill -TERM 0
  while [ "$t" -gt 0 ] && kill -0 $$; do
    s=; { read -r s </proc/$$/stat; }
    case $s in *") Z "*) break;; esac
    if sleep 0.1; then t=$((t - 1)); else sleep 1; t=$((t - 10)); fi
  done
  [ -z "$f" ] || rm -f -- "$f"
  kill -KILL 0
} </dev/null >/dev/null 2>&1 & )
exec "$@" 3<&-`;

/** Whether the watch can be used here (a POSIX shell at /bin/sh, process groups). */
export function watchAvailable(): boolean {
  return process.platform !== 'win32' && existsSync(SHELL);
}

/** Program and arguments that run `program args` under the watch, with `graceMs` for the backend. */
export function watchedCommand(program: string, args: string[], graceMs: number, pidFile = ''): { program: string; args: string[] } {
  const tenths = Math.max(1, Math.ceil(graceMs / 100));
  return { program: SHELL, args: ['-c', WATCH_SCRIPT, 'sh', String(tenths), pidFile, program, ...args] };
}

/**
 * Finds the program as execvp would (PATH for a bare name, `cwd` for a relative path), so that a
 * missing or non-executable program (or working directory) is reported by name before a shell turns
 * it into exit 127/126. Returns undefined when found, else the problem.
 */
export function programProblem(program: string, cwd: string | undefined, pathVar: string | undefined): string | undefined {
  const runnable = (file: string): 'ok' | 'missing' | 'not-executable' => {
    try {
      if (!statSync(file).isFile()) return 'not-executable';
      accessSync(file, constants.X_OK);
      return 'ok';
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'missing' : 'not-executable';
    }
  };
  if (program === '') return 'empty program name';
  // otherwise a missing working directory would be reported as "spawn /bin/sh ENOENT"
  if (cwd !== undefined) {
    try {
      if (!statSync(cwd).isDirectory()) return `working directory '${cwd}' is not a directory`;
    } catch {
      return `working directory '${cwd}' not found`;
    }
  }
  if (program.includes('/')) {
    const file = isAbsolute(program) ? program : resolve(cwd ?? process.cwd(), program);
    const r = runnable(file);
    if (r === 'ok') return undefined;
    return r === 'missing' ? `program '${program}' not found` : `program '${program}' is not executable`;
  }
  let sawNonExecutable = false;
  // an empty PATH entry means the working directory (POSIX)
  for (const dir of (pathVar ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const r = runnable(join(dir === '' ? (cwd ?? process.cwd()) : resolve(cwd ?? process.cwd(), dir), program));
    if (r === 'ok') return undefined;
    if (r === 'not-executable') sawNonExecutable = true;
  }
  return sawNonExecutable ? `program '${program}' found on PATH but not executable` : `program '${program}' not found on PATH`;
}
