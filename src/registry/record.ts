import { z } from 'zod';
import { rfc3339 } from '../common/time.js';
import { describeIssue } from '../common/validation.js';
import { hostProblem } from '../common/host-name.js';
import { nestsDeeperThan } from './json-depth.js';

/**
 * A registered service as stored. `lastHeartbeatMs` is epoch milliseconds (the wire form uses
 * seconds); `heardAtMs` is the same moment on the registry's liveness clock, which expiry uses
 * (see liveness-clock.ts); it is never persisted or shown.
 */
export interface ServiceRecord {
  name: string;
  host: string;
  port: number;
  hostname: string;
  url: string;
  status: string;
  timestamp: string;
  lastHeartbeatMs: number;
  heardAtMs: number;
  health_status: string;
  metadata: Record<string, unknown>;
  weight?: number;
}

/** The record as the API returns it (§1.2 of the original), with `is_healthy` computed on read. */
export type ServiceView = Omit<ServiceRecord, 'lastHeartbeatMs' | 'heardAtMs'> & { last_heartbeat: number; is_healthy: boolean };

export const METADATA_LIMIT_BYTES = 256 * 1024;
/** Objects and arrays inside metadata nest at most this deep (metadata itself is level 1). */
export const METADATA_MAX_DEPTH = 64;
const NAME_PATTERN = /^[A-Za-z0-9._:-]{1,253}$/;
const URL_PATTERN = /^https?:\/\/[^\s/?#]+[^\s]*$/i;

const fields = {
  name: z.string({ error: 'must be a string' }).regex(NAME_PATTERN, { error: 'must be 1-253 characters of A-Z a-z 0-9 . _ : -' }),
  host: z.string({ error: 'must be a string' }).superRefine(checkHost),
  port: z.int({ error: 'must be an integer from 1 to 65535' }).min(1, { error: 'must be an integer from 1 to 65535' }).max(65535, { error: 'must be an integer from 1 to 65535' }),
  hostname: z.string({ error: 'must be a string' }).superRefine(checkHost),
  url: z.string({ error: 'must be a string' }).regex(URL_PATTERN, { error: 'must be an http:// or https:// URL' }),
  status: z.string({ error: 'must be a string' }),
  metadata: z.record(z.string(), z.unknown(), { error: 'must be a JSON object' }).superRefine((m, ctx) => {
    // Depth first: JSON.stringify of a deeply nested value overflows the stack.
    if (nestsDeeperThan(m, METADATA_MAX_DEPTH)) ctx.addIssue({ code: 'custom', message: `must nest objects and arrays at most ${METADATA_MAX_DEPTH} levels deep` });
    else if (Buffer.byteLength(JSON.stringify(m)) > METADATA_LIMIT_BYTES) ctx.addIssue({ code: 'custom', message: `must be at most ${METADATA_LIMIT_BYTES} bytes of JSON` });
  }),
  weight: z.int({ error: 'must be a non-negative integer' }).min(0, { error: 'must be a non-negative integer' }),
};

function checkHost(value: string, ctx: z.RefinementCtx): void {
  const problem = hostProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
}

/** POST /services. `hostname` defaults to `host` (the original required it; every client sends both). */
const registrationSchema = z.object({
  name: fields.name,
  host: fields.host,
  port: fields.port,
  hostname: fields.hostname.optional(),
  url: fields.url,
  status: fields.status,
  metadata: fields.metadata.optional(),
  weight: fields.weight.optional(),
  timestamp: z.unknown().optional(),
});

/**
 * PUT /services/{name}: any subset; metadata is replaced wholesale, as in the original. The record's
 * server-owned fields may come along (a client that PUTs back a record it read), well typed, and are
 * ignored; `name` must be the record's own (renaming is register + delete).
 */
const updateSchema = z.object({
  host: fields.host.optional(),
  port: fields.port.optional(),
  hostname: fields.hostname.optional(),
  url: fields.url.optional(),
  status: fields.status.optional(),
  metadata: fields.metadata.optional(),
  weight: fields.weight.optional(),
  name: fields.name.optional(),
  timestamp: z.string({ error: 'must be a string' }).optional(),
  last_heartbeat: z.number({ error: 'must be a number' }).optional(),
  health_status: z.string({ error: 'must be a string' }).optional(),
  is_healthy: z.boolean({ error: 'must be a boolean' }).optional(),
});
const UPDATABLE = ['host', 'port', 'hostname', 'url', 'status', 'metadata', 'weight'] as const;

export type Registration = Omit<ServiceRecord, 'timestamp' | 'lastHeartbeatMs' | 'heardAtMs' | 'health_status'>;
export type ServicePatch = Partial<Pick<ServiceRecord, 'host' | 'port' | 'hostname' | 'url' | 'status' | 'metadata' | 'weight' | 'health_status'>>;

export type Validated<T> = { ok: true; value: T } | { ok: false; error: string };

/** `request body must be a JSON object, got an array` for anything but an object. */
function notAnObject(input: unknown): string | undefined {
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) return undefined;
  const got = input === null ? 'null' : Array.isArray(input) ? 'an array' : `a ${typeof input}`;
  return `request body must be a JSON object, got ${got}`;
}

export function validateRegistration(input: unknown): Validated<Registration> {
  const shape = notAnObject(input);
  if (shape) return { ok: false, error: shape };
  const r = registrationSchema.safeParse(input);
  if (!r.success) return { ok: false, error: describeIssue(r.error, input) };
  const { name, host, port, hostname, url, status, metadata, weight } = r.data;
  const reg: Registration = { name, host, port, hostname: hostname ?? host, url, status, metadata: metadata ?? {} };
  if (weight !== undefined) reg.weight = weight;
  return { ok: true, value: reg };
}

/** Validates a PUT body for the record `name`; `{}` is valid (it only refreshes the heartbeat). */
export function validateUpdate(input: unknown, name?: string): Validated<ServicePatch> {
  const shape = notAnObject(input);
  if (shape) return { ok: false, error: `${shape} (send {} to only refresh the heartbeat)` };
  const r = updateSchema.safeParse(input);
  if (!r.success) return { ok: false, error: describeIssue(r.error, input) };
  if (name !== undefined && r.data.name !== undefined && r.data.name !== name) {
    return { ok: false, error: `field 'name' cannot change ('${r.data.name}' in a PUT to '${name}'); register the new name with POST and delete the old one` };
  }
  const patch: ServicePatch = {};
  for (const k of UPDATABLE) if (r.data[k] !== undefined) (patch as Record<string, unknown>)[k] = r.data[k];
  return { ok: true, value: patch };
}

/** A new record heard from now: `wallMs` epoch time, `livenessMs` the liveness clock's time. */
export function newRecord(reg: Registration, wallMs: number, livenessMs: number = wallMs): ServiceRecord {
  return { ...reg, timestamp: rfc3339(wallMs), lastHeartbeatMs: wallMs, heardAtMs: livenessMs, health_status: 'unknown' };
}

/** §1.3: healthy = status "running" and a heartbeat younger than the timeout (on the liveness clock). */
export function isHealthy(rec: ServiceRecord, livenessNowMs: number, heartbeatTimeoutMs: number): boolean {
  return rec.status === 'running' && livenessNowMs - rec.heardAtMs < heartbeatTimeoutMs;
}

export function toView(rec: ServiceRecord, livenessNowMs: number, heartbeatTimeoutMs: number): ServiceView {
  const view: ServiceView = {
    name: rec.name,
    host: rec.host,
    port: rec.port,
    hostname: rec.hostname,
    url: rec.url,
    status: rec.status,
    timestamp: rec.timestamp,
    last_heartbeat: rec.lastHeartbeatMs / 1000,
    health_status: rec.health_status,
    is_healthy: isHealthy(rec, livenessNowMs, heartbeatTimeoutMs),
    metadata: rec.metadata,
  };
  if (rec.weight !== undefined) view.weight = rec.weight;
  return view;
}

/** Where a registry probes a service: the babysitter at port+1 for openai-api records, else `<url>/health`. */
export function probeUrl(rec: Pick<ServiceRecord, 'host' | 'port' | 'url' | 'metadata'>): string {
  if (rec.metadata.type === 'openai-api') {
    const host = rec.host.includes(':') && !rec.host.startsWith('[') ? `[${rec.host}]` : rec.host;
    return `http://${host}:${rec.port + 1}/health`;
  }
  return `${rec.url.replace(/\/+$/, '')}/health`;
}
