import { resolve } from 'node:path';
import { runCommand } from '../common/command.js';
import { listen } from '../common/listen.js';
import { createLogger } from '../common/log.js';
import { resolveSettings } from '../common/settings.js';
import { onShutdownSignal } from '../common/shutdown.js';
import { AddressGuard } from '../common/address-guard.js';
import { probeGuard } from '../common/guarded-lookup.js';
import { UsageError } from '../common/command.js';
import { Admission } from './admission.js';
import { reloadOnHangup, serverTlsOptions, tlsFilesOf } from '../common/tls-files.js';
import type { Server as TlsServer } from 'node:tls';
import { EmbeddedStore } from './embedded-store.js';
import { HealthProber } from './health-prober.js';
import { newRegistryCounters } from './metrics.js';
import { RegistryServer } from './server.js';
import { registrySpec } from './spec.js';
import { StaleReaper } from './stale-reaper.js';
import { StateFile } from './state-file.js';

export { registrySpec };

export function main(argv: string[], name = 'infini-svc registry'): Promise<void> {
  return runCommand(name, async () => {
    const settings = resolveSettings(registrySpec(name), argv);
    const port = settings.num('port');
    const host = settings.str('host');
    const seconds = (key: string) => settings.num(key) * 1000;
    const healthIntervalMs = seconds('health-interval');
    const healthTimeoutMs = seconds('health-timeout');
    const cleanupIntervalMs = seconds('cleanup-interval');
    const heartbeatTimeoutMs = seconds('heartbeat-timeout');
    const staleTimeoutMs = seconds('stale-timeout');
    const log = createLogger('registry', settings.str('log-level'));
    const authToken = settings.optStr('auth-token');
    const tlsFiles = tlsFilesOf(settings);
    let tls = tlsFiles && serverTlsOptions(tlsFiles);
    // SIGHUP's default action would end the process: the reload is set up before anything waits
    // (one while the state file is read updates the options the server will start with)
    let server: TlsServer | undefined;
    if (tlsFiles) reloadOnHangup({ setSecureContext: (o) => (server ? server.setSecureContext(o) : (tls = { ...tls, ...o })) }, tlsFiles, log);

    let guard: AddressGuard;
    try {
      guard = new AddressGuard({ allow: settings.list('allow-networks') ?? [], deny: settings.list('deny-networks') ?? [] });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const admission = new Admission({
      guard,
      maxServices: settings.num('max-services'),
      rateLimit: settings.num('rate-limit'),
      heartbeatRateLimit: settings.num('heartbeat-rate-limit'),
      burst: settings.num('rate-burst'),
    });

    const stateFile = settings.bool('no-persist') ? undefined : new StateFile(resolve(settings.str('state-file')), log);
    const store = new EmbeddedStore({ heartbeatTimeoutMs, maxHoldMs: staleTimeoutMs, stateFile, log });
    const restored = await store.open();
    const prober = new HealthProber(store, healthIntervalMs, healthTimeoutMs, log, settings.num('health-concurrency'), probeGuard(guard));
    const counters = newRegistryCounters();
    const reaper = new StaleReaper(store, { cleanupIntervalMs, staleTimeoutMs, healthCheckEveryMs: Math.min(1000, heartbeatTimeoutMs / 4) }, log, counters);
    const api = new RegistryServer({ store, prober, authToken, log, counters, stateFile, admission, tls });
    if (tls) server = api.server as unknown as TlsServer;

    const bound = await listen(api.server, port, host, name);
    await prober.start();
    reaper.start();
    log.info({ port: bound, host, state_file: stateFile?.path ?? null, restored, auth: Boolean(authToken), tls: tls !== undefined, config_file: settings.file ?? null }, 'registry listening');

    onShutdownSignal(log, async () => {
      await Promise.all([api.close(), prober.stop(), reaper.stop()]);
      await store.close();
      log.info('registry stopped');
    });
  });
}
