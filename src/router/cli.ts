import cluster from 'node:cluster';
import type { Server as TlsServer } from 'node:tls';
import { AddressGuard } from '../common/address-guard.js';
import { runCommand, UsageError } from '../common/command.js';
import { listen } from '../common/listen.js';
import { createLogger } from '../common/log.js';
import { resolveSettings } from '../common/settings.js';
import { onShutdownSignal } from '../common/shutdown.js';
import { startAccess, startPrimaryAccess, type AccessSettings } from './access/setup.js';
import { BackendLimits, perProcess } from './backend-limits.js';
import { trustCaFile } from '../common/client-tls.js';
import { reloadOnHangup, serverTlsOptions, tlsFilesOf } from '../common/tls-files.js';
import { BackendSet } from './backend-set.js';
import { RouterErrors, type ErrorFormat } from './errors.js';
import { HealthChecker } from './health-checker.js';
import { RouterMetrics } from './metrics.js';
import { EngineSignals } from './engine-signals.js';
import { createPolicy, type PolicyContext } from './policies/index.js';
import { RecentErrors } from './recent-errors.js';
import { RequestForwarder } from './request-forwarder.js';
import { RequestLog } from './request-log.js';
import { RegistryWatcher } from './registry-watcher.js';
import { RouterServer } from './server.js';
import { routerSpec } from './spec.js';
import { loadStaticServices } from './static-services.js';
import { onPrimaryStop, runPrimary } from './workers.js';

const isPrimary = cluster.isPrimary;

export { routerSpec };

export function main(argv: string[], name = 'infini-svc router'): Promise<void> {
  return runCommand(name, async () => {
    const settings = resolveSettings(routerSpec(name), argv);
    const log = createLogger('router', settings.str('log-level'));
    const seconds = (key: string) => settings.num(key) * 1000;
    const port = settings.num('router-port');
    const host = settings.str('host');
    const registryUrl = settings.optStr('registry-url')?.replace(/\/+$/, '') || null;
    const totalTimeoutMs = seconds('proxy-timeout');
    const sizeThresholdBytes = settings.num('cache-type-threshold');
    const policyName = settings.str('policy');
    const maxErrors = settings.num('max-errors');
    const errorFormat = settings.str('error-format') as ErrorFormat;
    const workers = settings.num('workers');
    const staticServices = settings.optStr('static-services');
    const requestLogTarget = settings.str('request-log');
    // a file (not off, not stdout) is reopened on SIGHUP, for logrotate
    const requestLogFile = requestLogTarget !== 'off' && requestLogTarget !== 'stdout';
    // a bad CIDR is refused before forking
    let guard: AddressGuard;
    try {
      guard = new AddressGuard({ allow: settings.list('allow-networks') ?? [], deny: settings.list('deny-networks') ?? [] });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const accessSettings: AccessSettings = { file: settings.optStr('api-keys'), pollSeconds: settings.num('api-keys-poll'), env: process.env, metricsAuth: settings.bool('metrics-auth') };
    // limits are per process: each of N workers enforces its share (see backend-limits.ts)
    const limits = new BackendLimits({ defaultLimit: settings.num('backend-max-concurrency'), table: settings.table('max-concurrency'), workers });
    const tlsFiles = tlsFilesOf(settings);
    // read (and checked) before forking too: a bad pair stops the primary with one clear line
    const tls = tlsFiles && serverTlsOptions(tlsFiles);
    trustCaFile(settings.optStr('registry-ca'));
    if (workers > 1 && isPrimary) {
      if (staticServices) loadStaticServices(staticServices); // refuse a bad file before forking
      startPrimaryAccess(accessSettings, log);
      runPrimary(workers, log, { drainMs: seconds('drain-timeout'), forwardHangup: tls !== undefined || requestLogFile });
      return;
    }

    const backends = new BackendSet({
      guard,
      connectTimeoutMs: seconds('connect-timeout'),
      headersTimeoutMs: totalTimeoutMs,
      idleTimeoutMs: seconds('idle-timeout'),
    }, { maxConcurrency: limits.of });
    if (staticServices) for (const s of loadStaticServices(staticServices)) backends.upsert(s);
    if (!registryUrl && backends.size === 0) log.warn('no --registry-url and no --static-services: every request will get 503');

    const ctx: PolicyContext = { engine: { current: undefined } };
    const policy = createPolicy(policyName, { sizeThresholdBytes, params: settings.map('policy-param'), perModel: settings.table('policies'), ctx });
    backends.setPolicy(policy);
    const engineIntervalMs = seconds('engine-metrics-interval');
    const usesEngine = policy.usesEngineSignals;
    const engineSignals =
      engineIntervalMs > 0 && usesEngine ? new EngineSignals(backends, { intervalMs: engineIntervalMs, wanted: (b) => b.models.some((m) => usesEngine(m)), log }) : undefined;
    ctx.engine.current = engineSignals;
    const errors = new RouterErrors(errorFormat);
    const requestLog =
      requestLogTarget === 'off' ? undefined : new RequestLog(requestLogTarget, (err) => log.error({ err: err.message, target: requestLogTarget }, 'request log write failed'));
    // logrotate's rename-then-signal: later lines go to a new file at the same path
    if (requestLog !== undefined && requestLogFile) {
      process.on('SIGHUP', () => {
        if (requestLog.reopen()) log.info({ file: requestLogTarget }, 'request log reopened');
      });
    }
    const recentErrors = new RecentErrors();
    const access = startAccess(accessSettings, {
      errors,
      log,
      forward: (req, res, info) => proxy.handle(req, res, info),
      refuse: (req, res, info, err, headers) => proxy.refuse(req, res, info, err, headers),
    });
    const queue = { queueSize: perProcess(settings.num('queue-size'), workers), maxBytes: perProcess(settings.num('queue-max-bytes'), workers), timeoutMs: seconds('queue-timeout') };
    const proxy = new RequestForwarder(backends, { maxErrors, maxAttempts: 3, totalTimeoutMs, errors, log, requestLog, onFailedRequest: recentErrors.onFailedRequest, queue, ...access?.forwarding });
    const checker = new HealthChecker(backends, seconds('health-interval'), seconds('health-timeout'), log, settings.num('health-concurrency'));
    const api = new RouterServer({
      backends,
      proxy,
      errors,
      registryUrl,
      maxBodyBytes: settings.num('max-body'),
      maxBufferedBytes: settings.num('max-buffered'),
      maxConnections: settings.num('max-connections'),
      healthChecks: () => checker.stats(),
      recentErrors,
      wantsPrompt: policy.wantsPrompt,
      access: access?.gate,
      tls,
      log,
    });
    // at once, before anything waits: SIGHUP's default action would end the process
    if (tlsFiles) reloadOnHangup(api.http.server as TlsServer, tlsFiles, log);
    const watcher = registryUrl
      ? new RegistryWatcher(registryUrl, backends, {
          syncIntervalMs: seconds('registry-sync-interval'),
          graceMs: seconds('service-removal-grace-period'),
          token: settings.optStr('registry-token'),
          log,
        })
      : undefined;

    const metrics = new RouterMetrics({ backends, inFlight: () => proxy.inFlight, admission: proxy.admission, routerErrors: errors.counts, policy, feedState: watcher && (() => watcher.state), engineScrapes: () => engineSignals?.counts });
    api.setMetrics(metrics);
    // counters of backends gone for a while leave /metrics
    const forget = setInterval(() => backends.traffic.forgetGone(Date.now()), 60_000);
    forget.unref();

    const bound = await listen(api.server, port, host, name);
    // stoppable from here on, also while the first registry listing is still under way
    const drainMs = seconds('drain-timeout');
    const stop = onShutdownSignal(log, async () => {
      access?.close();
      await watcher?.stop();
      await checker.stop();
      await engineSignals?.stop();
      await api.close(drainMs);
      proxy.close();
      clearInterval(forget);
      await requestLog?.close();
      await backends.closeAll();
      log.info('router stopped');
    });
    if (!isPrimary) onPrimaryStop(stop);
    await watcher?.start();
    checker.start();
    engineSignals?.start();
    log.info({ port: bound, host, registry_url: registryUrl, static_services: backends.all.filter((b) => b.isStatic).length, policy: policyName, tls: tls !== undefined }, 'router listening');
  });
}
