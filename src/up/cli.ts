import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError, numberOption, parseCommand, runCommand, type CommandSpec } from '../common/command.js';
import { createLogger } from '../common/log.js';
import { applyLaunchEnvironment, DEFAULT_CLUSTER, parseCluster } from './cluster-file.js';
import { Cluster, formatTable } from './cluster.js';

export function upSpec(name: string): CommandSpec {
  return {
    name,
    summary: 'Brings up a whole local cluster (registry, router, babysitters) from one cluster file.',
    options: {
      file: { type: 'string', short: 'f', metavar: 'FILE', help: 'cluster file (TOML); without it, the embedded default (3 mocks)' },
      'data-dir': { type: 'string', default: '.infini', metavar: 'DIR', help: 'registry state, generated configs and logs' },
      'wait-timeout': { type: 'string', default: '1800', metavar: 'SECONDS', help: 'how long to wait for every backend to be routable' },
      'heartbeat-interval': { type: 'string', default: '5', metavar: 'SECONDS', help: 'heartbeat of inline babysitters that set none' },
      'print-default': { type: 'boolean', help: 'print the embedded default cluster file and exit' },
    },
    epilog:
      'Environment of the original launch scripts is honoured: REGISTRY_PORT, ROUTER_PORT, REGISTRY_URL, ROUTER_REGISTRY_URL,\n' +
      'REGISTRY_HEALTH_INTERVAL, REGISTRY_HEALTH_TIMEOUT, REGISTRY_CLEANUP_INTERVAL, ROUTER_HEALTH_INTERVAL, ROUTER_HEALTH_TIMEOUT,\n' +
      'ROUTER_REGISTRY_SYNC_INTERVAL, BABYSITTER_CONFIGS (names under config/), BABYSITTER_HOST, BABYSITTER_REGISTRY_URL,\n' +
      'BABYSITTER_ROUTER_URL, ROUTER_URL, LAUNCH_COMPONENTS (all | none | babysitter | registry,router,babysitter).\n' +
      'Ctrl-C stops babysitters, then the router, then the registry; a second Ctrl-C kills everything at once.',
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
    const plan = applyLaunchEnvironment(parseCluster(text, file ?? '(default)'), process.env, process.cwd());
    const log = createLogger('up', String(values['log-level']));
    if (!plan.registry.enabled && !plan.router.enabled && plan.babysitters.length === 0) {
      log.warn('nothing to start (LAUNCH_COMPONENTS or the cluster file leaves every component out)');
      return;
    }
    const dataDir = resolve(String(values['data-dir']));
    const cluster = new Cluster(plan, {
      dataDir,
      waitTimeoutMs: numberOption(values, 'wait-timeout', { min: 1, max: 86_400 }) * 1000,
      heartbeatSeconds: numberOption(values, 'heartbeat-interval', { min: 0.1, max: 3600 }),
      log,
    });

    let stopping: Promise<void> | undefined;
    const stop = (signal: string) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: killing every service now');
        cluster.kill();
        process.exit(130);
      }
      log.info({ signal }, 'stopping the cluster: babysitters, then router, then registry');
      stopping = cluster.stop().then(() => {
        log.info('cluster stopped');
        process.exit(0);
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));

    await cluster.checkPorts();
    try {
      await cluster.start();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    if (stopping) return;
    const rows = await cluster.rows();
    const routerRow = rows.find((r) => r.service === 'router');
    const firstModel = routerRow?.models.split(', ')[0] ?? 'MODEL';
    const lines = [
      `infini-svc cluster is up (state and logs in ${dataDir})`,
      '',
      formatTable(rows),
      '',
    ];
    if (plan.router.enabled) {
      lines.push(
        'Try:',
        `  curl http://localhost:${plan.router.port}/v1/chat/completions -H 'Content-Type: application/json' \\`,
        `    -d '{"model":"${firstModel}","messages":[{"role":"user","content":"Hello!"}],"stream":true}'`,
        '',
      );
    }
    lines.push('Press Ctrl-C to stop.', '');
    process.stdout.write(lines.join('\n'));
  });
}
