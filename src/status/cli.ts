/**
 * `infini-svc status`: every service of a local cluster in one table (like `pm2 ls`), or as JSON;
 * `--watch` redraws it until Ctrl-C. Exit status 1 when a service does not answer.
 */
import { readFileSync } from 'node:fs';
import { httpUrl, localHost } from '../common/address.js';
import { UsageError, runCommand } from '../common/command.js';
import { trustCaFile } from '../common/client-tls.js';
import { resolveSettings } from '../common/settings.js';
import { onStopSignals } from '../common/shutdown.js';
import { applyLaunchEnvironment, parseCluster, resolveBinds } from '../up/cluster-file.js';
import { collectStatus, type StatusRow, type StatusTargets } from './collect.js';
import { statusSpec, WATCH_DEFAULT_SECONDS } from './spec.js';
import { formatStatusTable } from './table.js';

export { statusSpec };

/** `--watch` may come without its value: give it the default so the flag parser sees one. */
export function withWatchValue(argv: readonly string[]): string[] {
  return argv.map((a, i) => (a === '--watch' && (i + 1 >= argv.length || argv[i + 1]!.startsWith('-')) ? `--watch=${WATCH_DEFAULT_SECONDS}` : a));
}

function targetsOf(settings: ReturnType<typeof resolveSettings>): StatusTargets {
  const file = settings.optStr('file');
  const t: StatusTargets = { registryUrl: settings.str('registry-url'), routerUrl: settings.str('router-url'), babysitters: [] };
  const apiKey = settings.optStr('api-key');
  if (apiKey) t.apiKey = apiKey;
  if (file === undefined) return t;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cluster file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  // the addresses `up` gives the services of this file (flags given here still win)
  const plan = resolveBinds(applyLaunchEnvironment(parseCluster(text, file), process.env, process.cwd()));
  if (!settings.given('registry-url')) t.registryUrl = httpUrl(localHost(plan.registry.host), plan.registry.port);
  if (!settings.given('router-url')) t.routerUrl = httpUrl(localHost(plan.router.host), plan.router.port);
  t.babysitters = plan.babysitters.map((b) => ({ name: b.name, url: httpUrl(localHost(b.bind), b.port + 1) }));
  return t;
}

function render(rows: StatusRow[], json: boolean): string {
  return json ? `${JSON.stringify(rows, null, 2)}\n` : `${formatStatusTable(rows)}\n`;
}

const exitCodeOf = (rows: StatusRow[]) => (rows.every((r) => r.up) ? 0 : 1);

export function main(argv: string[], name = 'infini-svc status'): Promise<void> {
  return runCommand(name, async () => {
    const settings = resolveSettings(statusSpec(name), withWatchValue(argv));
    const targets = targetsOf(settings);
    trustCaFile(settings.optStr('ca-file'), '--ca-file');
    const json = settings.bool('json');
    const watch = settings.optNum('watch');
    if (watch === undefined) {
      const rows = await collectStatus(targets);
      process.stdout.write(render(rows, json));
      process.exitCode = exitCodeOf(rows);
      return;
    }
    let code = 0;
    let stopped = false;
    let wake: (() => void) | undefined;
    onStopSignals({
      graceful: () => {
        stopped = true;
        wake?.();
      },
      immediate: () => process.exit(130),
    });
    const tty = process.stdout.isTTY === true && !json;
    while (!stopped) {
      const rows = await collectStatus(targets);
      if (stopped) break;
      code = exitCodeOf(rows);
      const stamp = `${name}: every ${watch} s, Ctrl-C to stop (${new Date().toLocaleTimeString()})\n\n`;
      process.stdout.write(tty ? `\x1b[H\x1b[2J${stamp}${render(rows, false)}` : `${render(rows, json)}${json ? '' : '\n'}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, watch * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    process.exit(code);
  });
}
