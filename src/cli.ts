#!/usr/bin/env -S node --max-semi-space-size=8 --no-allocation-site-pretenuring
import { VERSION } from './common/version.js';

/** Subcommands, loaded lazily so each service starts only what it needs. */
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ main: (argv: string[], name?: string) => Promise<void> }> }> = {
  up: { summary: 'bring up a whole local cluster (registry, router, babysitters)', load: () => import('./up/cli.js') },
  registry: { summary: 'service registry (compatible with infini-registry)', load: () => import('./registry/cli.js') },
  router: { summary: 'OpenAI-compatible router (compatible with infini-router)', load: () => import('./router/cli.js') },
  babysitter: { summary: 'supervisor of one inference server (compatible with infini-babysitter)', load: () => import('./babysitter/cli.js') },
  mock: { summary: 'OpenAI-compatible simulated inference engine', load: () => import('./mock/cli.js') },
  status: { summary: 'show every service of a local cluster: state, PID, uptime, restarts, models, in-flight requests', load: () => import('./status/cli.js') },
  config: { summary: 'check a cluster or service config file, or print the settings a service would run with', load: () => import('./config/cli.js') },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)}${c.summary}`);
  return `infini-svc ${VERSION}\nControl plane for serving LLMs: registry, router, babysitter, mock engine, local cluster.\n\nUsage: infini-svc <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun 'infini-svc <command> --help' for a command's options.\n`;
}

async function run(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage());
    return;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write(`infini-svc ${VERSION}\n`);
    return;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`infini-svc: unknown command '${command}' (commands: ${Object.keys(COMMANDS).join(', ')})\n`);
    process.exit(2);
  }
  const mod = await entry.load();
  await mod.main(rest, `infini-svc ${command}`);
}

void run(process.argv.slice(2));
