/**
 * Seeded mutation of HTTP messages for the differential tests: the same seed gives the same cases
 * on every machine, so a disagreement found once can be replayed by its index. Mutations aim at
 * what decides framing (request and status lines, framing headers, chunk-size lines, line ends)
 * and use the bytes parsers disagree on (whitespace variants, CTLs, obs-text, separators).
 */
import { mulberry32 } from '../../src/mock/text-generator.js';

/** mulberry32 (the mock's own seeded generator); plenty for picking mutations. */
export const seededRandom = mulberry32;

/** Bytes that separate, terminate or pad something in HTTP/1.1, and a few that must never pass. */
const ALPHABET = [' ', '\t', '\r', '\n', '\r\n', '\x0b', '\x0c', '\x00', '\x01', '\x7f', '\xa0', '\xff', ':', ';', ',', '"', '=', '\\', '/', '?', '#', '%', '0', '1', '5', '9', 'a', 'f', 'F', 'g', 'x', 'X', '-', '+', '_', '.', 'A', 'z'];
const WHITESPACE = [' ', '\t', '\x0b', '\x0c', '\r', '\xa0', '  ', ' \t'];
/** Whole lines a mutation may splice into a head or a chunked body. */
const SPLICE_LINES = [
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: identity\r\n',
  'Transfer-Encoding: gzip\r\n',
  'Content-Length: 0\r\n',
  'Content-Length: 3\r\n',
  'Content-Length: 10\r\n',
  'Connection: close\r\n',
  'Connection: keep-alive\r\n',
  'Host: other\r\n',
  ' folded\r\n',
  '\r\n',
  '0\r\n\r\n',
  '3\r\nabc\r\n',
];

/** Lines whose bytes decide framing: mutations land there more often than anywhere else. */
const FOCUS_LINE = /^(?:[A-Z]+ |HTTP\/|transfer-encoding|content-length|connection|host|expect|[0-9a-f]+(?:[;\s]|$))/i;

export interface MutationSource {
  name: string;
  bytes: string;
}

export interface Mutant {
  /** The base it came from and the operations applied, for the report. */
  name: string;
  bytes: string;
}

export class Mutator {
  private readonly random: () => number;

  constructor(readonly seed: number) {
    this.random = seededRandom(seed);
  }

  private int(n: number): number {
    return Math.floor(this.random() * n);
  }

  private pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }

  /** Positions inside framing-relevant lines (line ends included), or anywhere. */
  private position(text: string): number {
    if (this.random() < 0.25 || text.length === 0) return this.int(text.length + 1);
    const focus: number[] = [];
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = text.length - 1;
      if (FOCUS_LINE.test(text.slice(start, end + 1))) focus.push(start, end + 1);
      start = end + 1;
    }
    if (focus.length === 0) return this.int(text.length + 1);
    const i = this.int(focus.length / 2) * 2;
    return focus[i]! + this.int(focus[i + 1]! - focus[i]! + 1);
  }

  /** One mutation of `text`, and its name. */
  private once(text: string): [string, string] {
    const p = this.position(text);
    switch (this.int(10)) {
      case 0: {
        const c = this.pick(ALPHABET);
        return [text.slice(0, p) + c + text.slice(p + 1), `replace@${p}`];
      }
      case 1: {
        const c = this.pick(ALPHABET);
        return [text.slice(0, p) + c + text.slice(p), `insert@${p}`];
      }
      case 2:
        return [text.slice(0, p) + text.slice(p + 1), `delete@${p}`];
      case 3: {
        // one CRLF becomes a bare LF, a bare CR or CRCR
        const ends = [...text.matchAll(/\r\n/g)].map((m) => m.index);
        if (ends.length === 0) return [text, 'noop'];
        const at = this.pick(ends);
        const to = this.pick(['\n', '\r', '\r\r\n', '\n\r']);
        return [text.slice(0, at) + to + text.slice(at + 2), `crlf@${at}`];
      }
      case 4: {
        // flip the case of a run of letters
        const n = 1 + this.int(12);
        const run = text.slice(p, p + n);
        const flipped = [...run].map((ch) => (ch === ch.toUpperCase() ? ch.toLowerCase() : ch.toUpperCase())).join('');
        return [text.slice(0, p) + flipped + text.slice(p + n), `case@${p}`];
      }
      case 5:
        return [text.slice(0, p) + this.pick(WHITESPACE) + text.slice(p), `space@${p}`];
      case 6: {
        // repeat a whole line
        const start = text.lastIndexOf('\n', p - 1) + 1;
        let end = text.indexOf('\n', p);
        end = end === -1 ? text.length : end + 1;
        return [text.slice(0, end) + text.slice(start, end) + text.slice(end), `dup-line@${start}`];
      }
      case 7: {
        // splice a framing line at a line start
        const start = text.lastIndexOf('\n', p - 1) + 1;
        return [text.slice(0, start) + this.pick(SPLICE_LINES) + text.slice(start), `splice@${start}`];
      }
      case 8: {
        // change a digit (lengths, chunk sizes, versions)
        const digits = [...text.matchAll(/[0-9a-fA-F]/g)].map((m) => m.index);
        if (digits.length === 0) return [text, 'noop'];
        const at = this.pick(digits);
        return [text.slice(0, at) + this.pick(['0', '1', '2', '7', '9', 'a', 'f', 'ff', '00', '-1', '+1', '0x']) + text.slice(at + 1), `digit@${at}`];
      }
      default:
        // cut the message short
        return [text.slice(0, p), `cut@${p}`];
    }
  }

  /** 1-3 mutations of one of the sources. */
  next(sources: readonly MutationSource[]): Mutant {
    const source = this.pick(sources);
    let bytes = source.bytes;
    const ops: string[] = [];
    const count = 1 + this.int(3);
    for (let i = 0; i < count; i++) {
      const [out, op] = this.once(bytes);
      bytes = out;
      ops.push(op);
    }
    return { name: `${source.name} ${ops.join(' ')}`, bytes };
  }
}
