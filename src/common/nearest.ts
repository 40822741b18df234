/** Edit distance (insertions, deletions, substitutions, transpositions of neighbours). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[rows - 1]![cols - 1]!;
}

/**
 * The candidate closest to `word` for a "did you mean" hint, or undefined when none is close
 * enough to be a likely typo. A candidate whose last part equals the word's (the key in the wrong
 * section) always counts.
 */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/-/g, '_');
  const w = norm(word);
  const tail = (s: string) => s.slice(s.lastIndexOf('.') + 1);
  const section = (s: string) => s.slice(0, Math.max(0, s.lastIndexOf('.')));
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const n = norm(c);
    // the same key in another section: prefer one as nested as the word (the original's schema
    // for a nested key, the flag's name for a top-level one)
    const sameTail = tail(n) === tail(w) && tail(w) !== '';
    // a key of the same section that the word is one part of (`port` in [router]: `router_port`)
    const partHere = section(n) === section(w) && tail(w) !== '' && tail(n).split('_').includes(tail(w));
    const score = partHere ? 0.45 : sameTail ? (n.includes('.') === w.includes('.') ? 0.5 : 0.6) : Math.min(editDistance(w, n), editDistance(tail(w), tail(n)) + 1);
    if (score < bestScore) {
      bestScore = score;
      best = c;
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(w.length / 3)) ? best : undefined;
}
