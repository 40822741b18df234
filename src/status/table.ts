import type { StatusRow } from './collect.js';

/** `42s`, `5m 3s`, `2h 10m`, `3d 4h`: an uptime as a glance needs it. */
export function formatUptime(seconds: number | null): string {
  if (seconds === null) return '-';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** `12.3`, `0.25`, `1200`: a rate with the digits that matter at its size. */
export function formatRate(perSecond: number | null): string {
  if (perSecond === null) return '-';
  if (perSecond === 0) return '0';
  if (perSecond >= 100) return String(Math.round(perSecond));
  if (perSecond >= 10) return perSecond.toFixed(1);
  return perSecond.toFixed(2);
}

/** `850ms`, `1.25s`, `42s`: a latency given in milliseconds. */
export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)}s`;
  return `${Math.round(ms / 1000)}s`;
}

const COLUMNS = ['SERVICE', 'STATE', 'PID', 'UPTIME', 'RESTARTS', 'MODELS', 'IN-FLIGHT', 'REQ/S', 'TTFT P50', 'URL'] as const;

const cells = (r: StatusRow): string[] => [
  r.service,
  r.state,
  r.pid === null ? '-' : String(r.pid),
  formatUptime(r.uptime_s),
  r.restarts === null ? '-' : String(r.restarts),
  r.models.length ? r.models.join(', ') : '-',
  r.in_flight === null ? '-' : String(r.in_flight),
  formatRate(r.req_s),
  formatMs(r.ttft_p50_ms),
  r.url,
];

/** The rows as an aligned table, like `pm2 ls`. */
export function formatStatusTable(rows: readonly StatusRow[]): string {
  const all = [[...COLUMNS], ...rows.map(cells)];
  const widths = COLUMNS.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
