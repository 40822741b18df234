/**
 * `infini-svc config check FILE` validates a cluster file or any service's config file without
 * starting anything; `infini-svc config print` shows the settings a service would run with and
 * where each came from (flag, environment, file, default), secrets redacted.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError, runCommand } from '../common/command.js';
import { parseConfigText, resolveSettings, type ServiceSpec, type Settings } from '../common/settings.js';
import { babysitterConfig } from '../babysitter/config.js';
import { babysitterSpec } from '../babysitter/spec.js';
import { mockSpec } from '../mock/spec.js';
import { registrySpec } from '../registry/spec.js';
import { routerSpec } from '../router/spec.js';
import { applyLaunchEnvironment, parseCluster, resolveBinds } from '../up/cluster-file.js';
import { babysitterSettings, launchPlan } from '../up/cluster.js';
import { upSpec } from '../up/spec.js';

const SPECS: Record<string, () => ServiceSpec> = { registry: registrySpec, router: routerSpec, babysitter: babysitterSpec, mock: mockSpec };

const USAGE = `Usage:
  infini-svc config check FILE [--service registry|router|babysitter|mock]
      validates a cluster file (up) or a service's config file; starts nothing
  infini-svc config print --service S [--json] [the service's flags, --config FILE ...]
      the settings service S would run with, and where each value came from
  infini-svc config print --file CLUSTER [--json]
      the settings of every service of a cluster file
`;

/** Cross checks beyond single settings (what a babysitter's backend type requires). */
function checkService(service: string, settings: Settings): void {
  if (service === 'babysitter') babysitterConfig(settings);
}

function isClusterFile(data: Record<string, unknown>): boolean {
  const keys = Object.keys(data);
  return keys.length > 0 && keys.every((k) => k === 'registry' || k === 'router' || k === 'babysitter');
}

/** Resolves a service's settings from a config file's data alone (no flags, no environment). */
function fromData(service: string, data: Record<string, unknown>, label: string, path: string): Settings {
  const settings = resolveSettings(SPECS[service]!(), [], {}, { data, label, path });
  checkService(service, settings);
  return settings;
}

function check(path: string, service: string | undefined): string {
  const text = (() => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
    }
  })();
  const data = parseConfigText(text, path);
  if (service === undefined && isClusterFile(data)) {
    const plan = applyLaunchEnvironment(parseCluster(text, path), {}, process.cwd());
    const up = resolveSettings(upSpec(), [], {});
    babysitterSettings(launchPlan(resolveBinds(plan, up.str('bind')), resolve(up.str('data-dir')), up.num('heartbeat-interval')), path, {});
    const parts = [plan.registry.enabled ? 'registry' : '', plan.router.enabled ? 'router' : '', `${plan.babysitters.length} babysitter${plan.babysitters.length === 1 ? '' : 's'}`].filter(Boolean);
    return `${path}: ok (cluster file: ${parts.join(', ')})`;
  }
  if (service !== undefined) {
    if (!SPECS[service]) throw new UsageError(`--service: expected one of ${Object.keys(SPECS).join(', ')}, got '${service}'`);
    fromData(service, data, `config file ${path}`, path);
    return `${path}: ok (${service} config file)`;
  }
  // which service's file is it? the one whose spec takes every key
  const errors: string[] = [];
  for (const name of Object.keys(SPECS)) {
    try {
      fromData(name, data, `config file ${path}`, path);
      return `${path}: ok (${name} config file)`;
    } catch (err) {
      errors.push(`  as a ${name} file: ${(err as Error).message}`);
    }
  }
  throw new UsageError(`${path} is not a valid cluster or service config file (name it with --service):\n${errors.join('\n')}`);
}

function show(v: unknown): string {
  if (v === undefined) return '-';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

function table(settings: Settings): string[] {
  const rows = settings.entries().filter((e) => e.value !== undefined).map((e) => [e.key, show(e.value), e.source ?? '']);
  const w0 = Math.max(7, ...rows.map((r) => r[0]!.length));
  const w1 = Math.min(60, Math.max(5, ...rows.map((r) => r[1]!.length)));
  return [`${'SETTING'.padEnd(w0)}  ${'VALUE'.padEnd(w1)}  SOURCE`, ...rows.map(([k, v, s]) => `${k!.padEnd(w0)}  ${v!.padEnd(w1)}  ${s}`)];
}

function print(argv: string[]): string {
  const json = argv.includes('--json');
  const args = argv.filter((a) => a !== '--json');
  const take = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    if (i === -1) return undefined;
    const v = args[i + 1];
    if (v === undefined) throw new UsageError(`${flag}: a value is required`);
    args.splice(i, 2);
    return v;
  };
  const service = take('--service');
  const cluster = take('--file');
  const out: Record<string, Settings> = {};
  if (cluster !== undefined) {
    if (service !== undefined || args.length > 0) throw new UsageError('config print --file takes no other flags');
    const text = readFileSync(cluster, 'utf8');
    if (!isClusterFile(parseConfigText(text, cluster))) throw new UsageError(`${cluster}: not a cluster file (expected [registry], [router] and [[babysitter]] sections)`);
    // what up would start, with up's own defaults (its data dir, binds and babysitter heartbeat)
    const up = resolveSettings(upSpec(), []);
    const plan = resolveBinds(applyLaunchEnvironment(parseCluster(text, cluster), process.env, process.cwd()), up.str('bind'));
    const launch = launchPlan(plan, resolve(up.str('data-dir')), up.num('heartbeat-interval'));
    if (launch.registry) out.registry = resolveSettings(registrySpec(), launch.registry);
    if (launch.router) out.router = resolveSettings(routerSpec(), launch.router);
    for (const [name, settings] of babysitterSettings(launch, cluster, process.env)) out[`babysitter ${name}`] = settings;
  } else {
    if (service === undefined) throw new UsageError(`config print: --service or --file is required\n${USAGE}`);
    if (!SPECS[service]) throw new UsageError(`--service: expected one of ${Object.keys(SPECS).join(', ')}, got '${service}'`);
    const settings = resolveSettings(SPECS[service]!(), args);
    checkService(service, settings);
    out[service] = settings;
  }
  if (json) {
    const obj = Object.fromEntries(Object.entries(out).map(([name, s]) => [name, Object.fromEntries(s.entries().filter((e) => e.value !== undefined).map((e) => [e.key, { value: e.value, source: e.source }]))]));
    return `${JSON.stringify(obj, null, 2)}\n`;
  }
  return `${Object.entries(out)
    .map(([name, s]) => [`[${name}]${s.file ? ` (config file ${s.file})` : ''}`, ...table(s)].join('\n'))
    .join('\n\n')}\n`;
}

export function main(argv: string[], name = 'infini-svc config'): Promise<void> {
  return runCommand(name, async () => {
    const [verb, ...rest] = argv;
    if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
      process.stdout.write(USAGE);
      return;
    }
    if (verb === 'check') {
      const service = (() => {
        const i = rest.indexOf('--service');
        if (i === -1) return undefined;
        const v = rest[i + 1];
        rest.splice(i, 2);
        return v;
      })();
      if (rest.length !== 1) throw new UsageError(`config check: one FILE expected\n${USAGE}`);
      process.stdout.write(`${check(rest[0]!, service)}\n`);
      return;
    }
    if (verb === 'print') {
      process.stdout.write(print(rest));
      return;
    }
    throw new UsageError(`unknown config command '${verb}' (expected check or print)\n${USAGE}`);
  });
}
