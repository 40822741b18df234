/**
 * The part of YAML that hand-written config files like examples/observability/prometheus.yml use:
 * block mappings and sequences by indentation (a sequence item may start a mapping on its own
 * line), flow sequences of scalars (`['a', b]`), quoted and plain scalars, `#` comments. Anything
 * else (tabs, anchors, multi-line strings, flow mappings) is an error naming the line, so a test
 * that reads a file with it fails instead of reading it wrong. No dependency for one test.
 */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  indent: number;
  text: string;
  no: number;
}

/** Cuts a `#` comment (at line start or after a space) that is not inside quotes. */
function stripComment(s: string): string {
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || s[i - 1] === ' ')) return s.slice(0, i);
  }
  return s;
}

const KEY = /^([A-Za-z_][\w.\-/]*|'[^']*'|"[^"]*"):(?:\s+(.*))?$/;

export function parseYamlSubset(text: string): YamlValue {
  const lines: Line[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.includes('\t')) throw new Error(`line ${i + 1}: tab (not in this YAML subset)`);
    const body = stripComment(raw).trimEnd();
    if (body.trim() === '') return;
    lines.push({ indent: body.length - body.trimStart().length, text: body.trim(), no: i + 1 });
  });
  let pos = 0;

  const fail = (line: Line, why: string): never => {
    throw new Error(`line ${line.no}: ${why}: ${line.text}`);
  };

  function scalar(s: string, line: Line): YamlValue {
    if (s.startsWith("'")) {
      if (!/^'(?:[^']|'')*'$/.test(s)) fail(line, 'unterminated quote');
      return s.slice(1, -1).replaceAll("''", "'");
    }
    if (s.startsWith('"')) {
      if (!/^"(?:[^"\\]|\\.)*"$/.test(s)) fail(line, 'unterminated quote');
      return JSON.parse(s) as string;
    }
    if (s.startsWith('[')) {
      if (!s.endsWith(']')) fail(line, 'flow sequence on more than one line');
      const inner = s.slice(1, -1).trim();
      if (inner === '') return [];
      const items = inner.match(/'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^,]+/g) ?? [];
      return items.map((x) => x.trim()).filter((x) => x !== '').map((x) => scalar(x, line));
    }
    if (/^[{&*!|>%@`]/.test(s)) fail(line, 'not in this YAML subset');
    if (s === 'true' || s === 'false') return s === 'true';
    if (s === 'null' || s === '~') return null;
    if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
    return s;
  }

  function keyOf(raw: string): string {
    return raw.startsWith("'") || raw.startsWith('"') ? raw.slice(1, -1) : raw;
  }

  /** The node whose first line is lines[pos], at that line's indent. */
  function node(): YamlValue {
    const first = lines[pos]!;
    return first.text === '-' || first.text.startsWith('- ') ? sequence(first.indent) : mapping(first.indent);
  }

  /** A value after `key:` with nothing on its line: a deeper block, a sequence at the key's indent, or null. */
  function blockAfter(indent: number): YamlValue {
    const next = lines[pos];
    if (!next) return null;
    if (next.indent > indent) return node();
    if (next.indent === indent && (next.text === '-' || next.text.startsWith('- '))) return sequence(indent);
    return null;
  }

  function mapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    while (pos < lines.length && lines[pos]!.indent === indent && !lines[pos]!.text.startsWith('- ') && lines[pos]!.text !== '-') {
      const line = lines[pos]!;
      const m = KEY.exec(line.text) ?? fail(line, 'expected "key: value"');
      const key = keyOf(m[1]!);
      if (Object.hasOwn(out, key)) fail(line, `duplicate key ${key}`);
      pos++;
      out[key] = m[2] === undefined || m[2] === '' ? blockAfter(indent) : scalar(m[2], line);
    }
    if (pos < lines.length && lines[pos]!.indent > indent) fail(lines[pos]!, 'unexpected indentation');
    return out;
  }

  function sequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    while (pos < lines.length && lines[pos]!.indent === indent && (lines[pos]!.text === '-' || lines[pos]!.text.startsWith('- '))) {
      const line = lines[pos]!;
      const rest = line.text === '-' ? '' : line.text.slice(2).trimStart();
      if (rest === '') {
        pos++;
        out.push(lines[pos] && lines[pos]!.indent > indent ? node() : null);
      } else if (KEY.test(rest) && !rest.startsWith('[')) {
        // "- key: value": a mapping whose keys line up with this first one
        lines[pos] = { indent: indent + (line.text.length - rest.length), text: rest, no: line.no };
        out.push(mapping(lines[pos]!.indent));
      } else {
        pos++;
        out.push(scalar(rest, line));
      }
    }
    return out;
  }

  if (lines.length === 0) return null;
  const root = node();
  if (pos < lines.length) fail(lines[pos]!, 'unexpected indentation');
  return root;
}
