import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError, runCommand } from '../common/command.js';
import { hostProblem } from '../common/host-name.js';
import { createLogger } from '../common/log.js';
import { resolveSettings } from '../common/settings.js';
import { onStopSignals } from '../common/shutdown.js';
import { applyLaunchEnvironment, DEFAULT_CLUSTER, parseCluster, resolveBinds } from './cluster-file.js';
import { babysitterSettings, Cluster, formatTable, launchPlan } from './cluster.js';
import { UpConsole } from './console.js';
import { sha256Hex } from '../router/access/key-file.js';
import { KEYS_ENV, LAUNCHER_KEY_ENV } from '../router/access/key-source.js';
import { upSpec } from './spec.js';

export { upSpec };

export function main(argv: string[], name = 'infini-svc up'): Promise<void> {
  return runCommand(name, async () => {
    const settings = resolveSettings(upSpec(name), argv);
    if (settings.bool('print-default')) {
      process.stdout.write(DEFAULT_CLUSTER);
      return;
    }
    const file = settings.optStr('file');
    let text = DEFAULT_CLUSTER;
    if (file) {
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cluster file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
      }
    }
    const bind = settings.str('bind').trim();
    const bindProblem = hostProblem(bind);
    if (bindProblem) throw new UsageError(`--bind: '${bind}' ${bindProblem}`);
    const plan = resolveBinds(applyLaunchEnvironment(parseCluster(text, file ?? '(default)'), process.env, process.cwd()), bind);
    const log = createLogger('up', settings.str('log-level'));
    const apiKeys = settings.optStr('api-keys');
    if (apiKeys) plan.router.flags['api-keys'] = resolve(apiKeys);
    const keyed = plan.router.flags['api-keys'] !== undefined || !!process.env[KEYS_ENV];
    // a key of up's own (admin, this run only; the router gets its hash) to follow its router's backends
    const launcherKey = randomBytes(24).toString('base64url');
    process.env[LAUNCHER_KEY_ENV] = sha256Hex(launcherKey);
    if (!plan.registry.enabled && !plan.router.enabled && plan.babysitters.length === 0) {
      log.warn('nothing to start (LAUNCH_COMPONENTS or the cluster file leaves every component out)');
      return;
    }
    const dataDir = resolve(settings.str('data-dir'));
    // every babysitter's settings as it will read them: a mistake stops up before anything starts
    babysitterSettings(launchPlan(plan, dataDir, settings.num('heartbeat-interval')), file ?? '(default)', process.env);
    const out = new UpConsole();
    const cluster = new Cluster(plan, {
      dataDir,
      waitTimeoutMs: settings.num('wait-timeout') * 1000,
      heartbeatSeconds: settings.num('heartbeat-interval'),
      log,
      out,
      routerHeaders: { authorization: `Bearer ${launcherKey}` },
    });

    let stopping: Promise<void> | undefined;
    onStopSignals({
      graceful: (reason) => {
        out.say('up', `${reason}: stopping the cluster (router, then babysitters, then registry); again to kill everything at once`);
        stopping = cluster.stop().then(() => {
          out.say('up', 'cluster stopped');
          process.exit(0);
        });
      },
      immediate: (signal) => {
        out.say('up', `${signal} again: killing every service now`);
        cluster.kill();
        process.exit(130);
      },
    });

    await cluster.checkPorts();
    out.print(`infini-svc up: ${file ?? 'the default cluster'}; logs in ${join(dataDir, 'logs')}\n`);
    try {
      await cluster.start();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    if (stopping) return;
    const rows = await cluster.rows();
    const routerRow = rows.find((r) => r.service === 'router');
    const firstModel = routerRow && routerRow.models !== '-' ? routerRow.models.split(', ')[0] : 'MODEL';
    const lines = ['', `infini-svc cluster is up (state and logs in ${dataDir})`, '', formatTable(rows), ''];
    if (plan.router.enabled) {
      lines.push(
        'Try:',
        `  curl ${cluster.routerHintBase}/v1/chat/completions -H 'Content-Type: application/json' \\`,
        ...(keyed ? ['    -H "Authorization: Bearer $YOUR_API_KEY" \\'] : []),
        `    -d '{"model":"${firstModel}","messages":[{"role":"user","content":"Hello!"}],"stream":true}'`,
        '',
        `Dashboard: ${cluster.routerHintBase}/dashboard${keyed ? ' (asks for an admin key)' : ''}`,
        `Status:    ${keyed ? 'INFINI_API_KEY=$ADMIN_KEY ' : ''}npx infini-svc status${plan.source === '(default)' ? '' : ` --file ${plan.source}`}`,
        `Requests:  ${join(dataDir, 'logs', 'router.log')} (a JSON line each)`,
        '',
      );
    }
    lines.push('Backend changes are reported below as they happen. Press Ctrl-C to stop.', '');
    out.print(lines.join('\n'));
  });
}
