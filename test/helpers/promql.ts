/**
 * Just enough PromQL (and Prometheus text format) to check a dashboard against live /metrics:
 * which metrics an expression selects, with which matcher labels, which labels it groups by; and
 * which families and sample labels a scrape holds.
 */

/** PromQL words that read like metric names but are not. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2', 'start', 'end']);

export interface Selector {
  metric: string;
  /** label names its `{...}` matchers test */
  matchers: string[];
}

export interface ExprNames {
  selectors: Selector[];
  /** label names in by (...), without (...), on (...), ignoring (...), group_left/right (...) */
  grouping: string[];
  /** label names that label_replace / label_join write (they exist after the call) */
  written: string[];
}

const labelList = (s: string) => s.split(',').map((x) => x.trim()).filter((x) => x !== '');

/**
 * The metrics an expression selects. Grafana's variables ($model, $__rate_interval) may stand
 * anywhere a string or duration does. Identifiers followed by `(` are functions or aggregations.
 */
export function exprNames(expr: string): ExprNames {
  const written: string[] = [];
  // the destination label of label_replace(v, "dst", ...) / label_join(v, "dst", ...), read before strings go
  for (const m of expr.matchAll(/\blabel_(?:replace|join)\s*\([^"]*"([^"]*)"/g)) written.push(m[1]!);
  // Strings first (a matcher value may hold anything), then ranges, then the rest token by token.
  const s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""').replace(/\[[^\]]*\]/g, ' ');
  const tokens = [...s.matchAll(/(\{[^}]*\})|\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)|(\$\w+)|(\d[\w.]*)|([a-zA-Z_:][\w:]*)|(\S)/g)];
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t[2] !== undefined) grouping.push(...labelList(t[3]!));
    const ident = t[6];
    if (ident === undefined || KEYWORDS.has(ident)) continue;
    const next = tokens[i + 1];
    if (next?.[7] === '(' || next?.[2] === 'by' || next?.[2] === 'without') continue; // a function or aggregation
    const matchers = next?.[1] !== undefined ? [...next[1].matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!) : [];
    selectors.push({ metric: ident, matchers });
  }
  return { selectors, grouping, written };
}

/** The metric of a Grafana variable query `label_values(metric, label)` (undefined for other forms). */
export function labelValuesMetric(query: string): { metric: string; label: string } | undefined {
  const m = /^\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*(?:\{[^}]*\})?\s*,\s*([a-zA-Z_]\w*)\s*\)\s*$/.exec(query);
  return m ? { metric: m[1]!, label: m[2]! } : undefined;
}

/** What one /metrics answer holds: family types (`# TYPE`) and the label names of each sample name. */
export interface Exposition {
  families: Map<string, string>;
  samples: Map<string, Set<string>>;
}

export function parseExposition(text: string): Exposition {
  const families = new Map<string, string>();
  const samples = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{.*\})?\s/.exec(line);
    if (!m) continue;
    const labels = samples.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="(?:[^"\\]|\\.)*"/g)) labels.add(l[1]!);
    samples.set(m[1]!, labels);
  }
  return { families, samples };
}

/**
 * The family a queried name belongs to in `families`, or undefined: the name itself, a histogram's
 * (or summary's) `_bucket`/`_sum`/`_count`, or a counter declared without its `_total`.
 */
export function familyOf(name: string, families: ReadonlyMap<string, string>): string | undefined {
  if (families.has(name)) return name;
  const suffix = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (suffix) {
    const type = families.get(suffix[1]!);
    if (type === 'histogram' || (type === 'summary' && suffix[2] !== 'bucket')) return suffix[1];
  }
  const total = /^(.*)_total$/.exec(name);
  if (total && families.get(total[1]!) === 'counter') return total[1];
  return undefined;
}
