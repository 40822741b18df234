import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { requestShutdown } from './shutdown.js';

/**
 * Parent-death watch. A supervisor (`infini-svc up`) passes its child an extra pipe and names its
 * descriptor in this variable; the child never reads data from it, only end-of-file, which the
 * kernel delivers when the parent is gone however it died (SIGKILL included). The child then stops
 * gracefully, so nothing a killed supervisor started is left running.
 */
export const PARENT_FD_ENV = 'INFINI_PARENT_FD';

/**
 * Calls `onGone` once when the peer of `fd` closes. Never keeps the event loop alive by itself.
 * Returns false (and does nothing) when `fd` cannot be watched.
 */
export function watchParent(fd: number, onGone: () => void): boolean {
  let socket: Socket;
  try {
    // Node gives a child's extra 'pipe' stdio as a socket pair; never take over a descriptor of
    // Node's own (its internal pipes are FIFOs) because of a stray variable
    if (!fstatSync(fd).isSocket()) return false;
    socket = new Socket({ fd, readable: true, writable: false });
  } catch {
    return false;
  }
  let fired = false;
  const gone = () => {
    if (fired) return;
    fired = true;
    socket.destroy();
    onGone();
  };
  socket.on('data', () => undefined); // the parent never writes; anything it might is ignored
  socket.on('end', gone);
  socket.on('error', gone); // a reset peer is a gone parent too
  socket.on('close', gone);
  socket.unref();
  return true;
}

/**
 * Activated by every command (runCommand) when PARENT_FD_ENV is set; does nothing otherwise. The
 * variable is removed from this process's environment so that processes it starts in turn (an
 * engine under a babysitter, router workers) do not watch a descriptor that is not theirs. On the
 * parent's death the service's own graceful stop begins, as on a first SIGTERM; if it is already
 * stopping, nothing more happens (a signal would count as a second one and cut the stop short).
 */
export function startParentWatchFromEnv(env: NodeJS.ProcessEnv = process.env): void {
  const raw = env[PARENT_FD_ENV];
  if (raw === undefined) return;
  delete env[PARENT_FD_ENV];
  const fd = Number(raw);
  if (!Number.isInteger(fd) || fd < 3) {
    process.stderr.write(`ignoring ${PARENT_FD_ENV}='${raw}': expected a descriptor number of 3 or more\n`);
    return;
  }
  const ok = watchParent(fd, () => {
    // no stop registered yet (still starting, or a command that has none): the usual signal
    if (!requestShutdown('parent process exited')) process.kill(process.pid, 'SIGTERM');
  });
  if (!ok) process.stderr.write(`ignoring ${PARENT_FD_ENV}=${fd}: not an open socket\n`);
}
