/** The report of `npm run bench:abuse`: its shape, the ratios and the Markdown (pure functions). */

/** How a measurement on one target ended. */
export type Outcome = 'ok' | 'exceeded the RSS cap' | 'crashed' | 'timed out' | 'ended the connection';

export type FigureValue = number | boolean | undefined;

export interface FigureSpec {
  key: string;
  label: string;
  /** Decimals shown in Markdown. */
  digits: number;
  /** Whether router/node:http is a meaningful ratio of this figure. */
  ratio?: boolean;
}

export interface TargetResult {
  outcome: Outcome;
  figures: Record<string, FigureValue>;
  /** Per-repetition values behind a median. */
  samples?: Record<string, number[]>;
  /** What else was seen (an answer the target sent, where it stopped). */
  note?: string;
}

export interface Measurement {
  id: string;
  title: string;
  figures: FigureSpec[];
  targets: Record<string, TargetResult>;
  /** First target's figure over the second's, for the figures marked `ratio`. */
  ratios: Record<string, number | undefined>;
}

export interface AbuseReport {
  when: string;
  machine: Record<string, string | number>;
  /** Target names (the first is ours) and how each was started. */
  targets: Array<{ name: string; started: string }>;
  /** How each figure is measured. */
  method: string[];
  settings: Record<string, string | number>;
  measurements: Measurement[];
}

export const RATIO_TARGETS = ['router', 'node:http'] as const;

/** a / b for two finite numbers with b not 0. */
export function ratio(a: FigureValue, b: FigureValue): number | undefined {
  if (typeof a !== 'number' || typeof b !== 'number' || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined;
  return a / b;
}

export function median(values: readonly number[]): number | undefined {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return undefined;
  const mid = xs.length >> 1;
  return xs.length % 2 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
}

/** A measurement with its ratios filled in: router over node:http for each figure marked `ratio`. */
export function measurement(id: string, title: string, figures: FigureSpec[], targets: Record<string, TargetResult>): Measurement {
  const [ours, theirs] = RATIO_TARGETS;
  const ratios: Measurement['ratios'] = {};
  for (const f of figures) if (f.ratio) ratios[f.key] = ratio(targets[ours]?.figures[f.key], targets[theirs]?.figures[f.key]);
  return { id, title, figures, targets, ratios };
}

function cell(value: FigureValue, digits: number, result: TargetResult | undefined): string {
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (value === undefined || !Number.isFinite(value)) return result && result.outcome !== 'ok' ? result.outcome : '-';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function toMarkdown(r: AbuseReport): string {
  const m = r.machine;
  const names = r.targets.map((t) => t.name);
  const lines: string[] = [];
  lines.push(`Measured ${r.when} on ${m.cpu} (${m.cores} cores, ${m.memoryGb} GB), Node ${m.node}, Linux ${m.kernel}.`);
  for (const t of r.targets) lines.push(`- ${t.name}: ${t.started}`);
  for (const line of r.method) lines.push(`- ${line}`);
  lines.push(`- Settings: ${Object.entries(r.settings).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  lines.push('');
  const ratioHeader = `${RATIO_TARGETS[0]}/${RATIO_TARGETS[1]}`;
  lines.push(`| measurement | figure | ${names.join(' | ')} | ${ratioHeader} |`);
  lines.push(`|---|---|${names.map(() => '---:').join('|')}|---:|`);
  const notes: string[] = [];
  for (const ms of r.measurements) {
    ms.figures.forEach((f, i) => {
      const values = names.map((n) => cell(ms.targets[n]?.figures[f.key], f.digits, ms.targets[n]));
      const q = f.ratio ? cell(ms.ratios[f.key], 2, undefined) : '';
      lines.push(`| ${i === 0 ? ms.title : ''} | ${f.label} | ${values.join(' | ')} | ${q} |`);
    });
    for (const n of names) {
      const t = ms.targets[n];
      if (t && (t.outcome !== 'ok' || t.note)) notes.push(`${ms.title}, ${n}: ${t.outcome}${t.note ? `; ${t.note}` : ''}.`);
    }
  }
  if (notes.length > 0) {
    lines.push('');
    for (const n of notes) lines.push(`- ${n}`);
  }
  return lines.join('\n') + '\n';
}
