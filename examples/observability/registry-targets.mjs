#!/usr/bin/env node
// @ts-check
/**
 * Writes the registry's services as Prometheus file_sd targets, so that Prometheus scrapes every
 * babysitter (its own port, backend port + 1) and every engine without a port listed by hand.
 *
 *   node examples/observability/registry-targets.mjs [--registry URL] [--out FILE] [--every SECONDS]
 *
 * --registry  the registry (default http://127.0.0.1:18000, the port `infini-svc up` uses)
 * --out       the file to write (default: stdout); written whole and renamed into place, so
 *             Prometheus, which watches it, never reads half a file
 * --every     rewrite it every SECONDS (default 0: once); a failed listing keeps the last file
 *
 * One target group per record, its labels meant for relabeling (prometheus.yml keeps or drops by
 * `__meta_infini_role`, then copies the names it wants):
 *   __meta_infini_role     babysitter (a babysitter's own record), engine (an OpenAI-API backend), or other
 *   __meta_infini_name     the record's name (the router's `backend` label for an engine)
 *   __meta_infini_type     metadata.type (openai-api, or the babysitter's backend type: vllm, mock, ...)
 *   __meta_infini_parent   metadata.parent_service: the babysitter that runs this engine
 *   __meta_infini_healthy  "true" or "false", as the registry's is_healthy
 *   __meta_infini_models   metadata.models joined with commas, with a comma at each end
 * Records that name a scheme in their url get `__scheme__`. This is the shape of Prometheus'
 * http_sd, so a registry endpoint serving it could replace this script one for one.
 */
import { rename, writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** The role a registry record plays for scraping; see the list above. */
function role(record) {
  const meta = record.metadata ?? {};
  if (meta.babysitter !== undefined && meta.parent_service === undefined) return 'babysitter';
  if (meta.type === 'openai-api') return 'engine';
  return 'other';
}

/** host:port and scheme of a record: its url when it has one, else host and port. */
function address(record) {
  if (typeof record.url === 'string') {
    try {
      const u = new URL(record.url);
      const port = u.port || (u.protocol === 'https:' ? '443' : '80');
      // an IPv6 hostname keeps its brackets, as a target needs them
      return { target: `${u.hostname}:${port}`, scheme: u.protocol.replace(':', '') };
    } catch {
      // fall through to host and port
    }
  }
  if (typeof record.host === 'string' && Number.isInteger(record.port)) return { target: `${record.host}:${record.port}`, scheme: undefined };
  return undefined;
}

/** file_sd target groups for a registry listing (`{services: [...]}` or a bare array). */
export function targetGroups(listing) {
  const records = Array.isArray(listing) ? listing : Array.isArray(listing?.services) ? listing.services : [];
  const groups = [];
  for (const record of records) {
    if (typeof record !== 'object' || record === null || typeof record.name !== 'string') continue;
    const addr = address(record);
    if (!addr) continue;
    const meta = typeof record.metadata === 'object' && record.metadata !== null ? record.metadata : {};
    const models = Array.isArray(meta.models) ? meta.models.filter((m) => typeof m === 'string') : [];
    const labels = {
      __meta_infini_role: role(record),
      __meta_infini_name: record.name,
      __meta_infini_type: typeof meta.type === 'string' ? meta.type : '',
      __meta_infini_parent: typeof meta.parent_service === 'string' ? meta.parent_service : '',
      __meta_infini_healthy: String(record.is_healthy !== false),
      __meta_infini_models: models.length > 0 ? `,${models.join(',')},` : '',
    };
    if (addr.scheme === 'http' || addr.scheme === 'https') labels.__scheme__ = addr.scheme;
    groups.push({ targets: [addr.target], labels });
  }
  return groups;
}

async function listing(registry) {
  const res = await fetch(`${registry.replace(/\/+$/, '')}/services`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET /services answered ${res.status}`);
  return res.json();
}

async function writeOnce(registry, out) {
  const text = `${JSON.stringify(targetGroups(await listing(registry)), null, 2)}\n`;
  if (!out) return void process.stdout.write(text);
  const tmp = `${out}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, out);
}

async function main() {
  const { values } = parseArgs({ options: { registry: { type: 'string', default: 'http://127.0.0.1:18000' }, out: { type: 'string' }, every: { type: 'string', default: '0' } } });
  const every = Number(values.every);
  if (!Number.isFinite(every) || every < 0) throw new Error(`--every: not a number of seconds: ${values.every}`);
  if (every === 0) return writeOnce(values.registry, values.out);
  for (;;) {
    try {
      await writeOnce(values.registry, values.out);
    } catch (err) {
      process.stderr.write(`registry-targets: ${values.registry}: ${err instanceof Error ? err.message : String(err)}; keeping the last targets\n`);
    }
    await new Promise((r) => setTimeout(r, every * 1000));
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`registry-targets: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
