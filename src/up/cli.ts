import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError, numberOption, parseCommand, runCommand, type CommandSpec } from '../common/command.js';
import { hostProblem } from '../common/host-name.js';
import { createLogger } from '../common/log.js';
import { onStopSignals } from '../common/shutdown.js';
import { applyLaunchEnvironment, DEFAULT_CLUSTER, LOCAL_BIND, parseCluster, resolveBinds } from './cluster-file.js';
import { Cluster, formatTable } from './cluster.js';
import { UpConsole } from './console.js';

export function upSpec(name: string): CommandSpec {
  return {
    name,
    summary: 'Brings up a whole local cluster (registry, router, babysitters) from one cluster file.',
    options: {
      file: { type: 'string', short: 'f', metavar: 'FILE', help: 'cluster file (TOML); without it, the embedded default (3 mocks)' },
      'data-dir': { type: 'string', default: '.infini', metavar: 'DIR', help: 'registry state, generated configs and logs' },
      'wait-timeout': { type: 'string', default: '1800', metavar: 'SECONDS', help: 'how long to wait for every backend to be routable' },
      'heartbeat-interval': { type: 'string', default: '5', metavar: 'SECONDS', help: 'heartbeat of inline babysitters that set none' },
      bind: {
        type: 'string',
        default: LOCAL_BIND,
        env: 'INFINI_UP_BIND',
        metavar: 'ADDR',
        help: 'address of every service whose section sets none (registry/router host, babysitter bind); 0.0.0.0 exposes them',
      },
      'print-default': { type: 'boolean', help: 'print the embedded default cluster file and exit' },
    },
    epilog:
      'Environment of the original launch scripts is honoured: REGISTRY_PORT, ROUTER_PORT, REGISTRY_URL, ROUTER_REGISTRY_URL,\n' +
      'REGISTRY_HEALTH_INTERVAL, REGISTRY_HEALTH_TIMEOUT, REGISTRY_CLEANUP_INTERVAL, ROUTER_HEALTH_INTERVAL, ROUTER_HEALTH_TIMEOUT,\n' +
      'ROUTER_REGISTRY_SYNC_INTERVAL, BABYSITTER_CONFIGS (names under config/), BABYSITTER_HOST, BABYSITTER_REGISTRY_URL,\n' +
      'BABYSITTER_ROUTER_URL, ROUTER_URL, LAUNCH_COMPONENTS (all | none | babysitter | registry,router,babysitter).\n' +
      'Ctrl-C stops the router first (in-flight requests finish within its drain timeout), then the babysitters and their\n' +
      'backends, then the registry; a second Ctrl-C kills everything at once. If up itself is killed, every service stops too.',
  };
}

export function main(argv: string[], name = 'infini-svc up'): Promise<void> {
  return runCommand(name, async () => {
    const { values } = parseCommand(upSpec(name), argv);
    if (values['print-default']) {
      process.stdout.write(DEFAULT_CLUSTER);
      return;
    }
    const file = values.file as string | undefined;
    let text = DEFAULT_CLUSTER;
    if (file) {
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cluster file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
      }
    }
    const bind = String(values.bind).trim();
    const bindProblem = hostProblem(bind);
    if (bindProblem) throw new UsageError(`--bind: '${bind}' ${bindProblem}`);
    const plan = resolveBinds(applyLaunchEnvironment(parseCluster(text, file ?? '(default)'), process.env, process.cwd()), bind);
    const log = createLogger('up', String(values['log-level']));
    if (!plan.registry.enabled && !plan.router.enabled && plan.babysitters.length === 0) {
      log.warn('nothing to start (LAUNCH_COMPONENTS or the cluster file leaves every component out)');
      return;
    }
    const dataDir = resolve(String(values['data-dir']));
    const out = new UpConsole();
    const cluster = new Cluster(plan, {
      dataDir,
      waitTimeoutMs: numberOption(values, 'wait-timeout', { min: 1, max: 86_400 }) * 1000,
      heartbeatSeconds: numberOption(values, 'heartbeat-interval', { min: 0.1, max: 3600 }),
      log,
      out,
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
        `    -d '{"model":"${firstModel}","messages":[{"role":"user","content":"Hello!"}],"stream":true}'`,
        '',
      );
    }
    lines.push('Backend changes are reported below as they happen. Press Ctrl-C to stop.', '');
    out.print(lines.join('\n'));
  });
}
