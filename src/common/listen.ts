import type { AddressInfo, Server } from 'node:net';
import { UsageError } from './command.js';

/** Listens and resolves with the bound port; a busy port becomes one clear line naming it. */
export function listen(server: Server, port: number, host: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new UsageError(`${what}: port ${port} on ${host} is already in use`));
      else if (err.code === 'EACCES') reject(new UsageError(`${what}: no permission to listen on port ${port} on ${host}`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new UsageError(`${what}: cannot bind address ${host}`));
      else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
