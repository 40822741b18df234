/**
 * Config tables keyed by name or glob ([policies], [max_concurrency], a key's models): an exact
 * name first, else the first glob that matches in the table's order. `*` is any run of characters
 * (slashes too), `?` one; everything else literal.
 */
export function globRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 's');
}

export const isGlob = (pattern: string): boolean => pattern.includes('*') || pattern.includes('?');

export class NameRules<T> {
  private readonly exact = new Map<string, T>();
  private readonly globs: Array<{ re: RegExp; value: T }> = [];

  /** `rules` in the table's order; of two rules for one exact name the first counts. */
  constructor(rules: Iterable<readonly [pattern: string, value: T]>) {
    for (const [pattern, value] of rules) {
      if (isGlob(pattern)) this.globs.push({ re: globRegExp(pattern), value });
      else if (!this.exact.has(pattern)) this.exact.set(pattern, value);
    }
  }

  get size(): number {
    return this.exact.size + this.globs.length;
  }

  /** The value of the rule for `name`, or undefined when none matches. */
  get(name: string): T | undefined {
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    for (const g of this.globs) if (g.re.test(name)) return g.value;
    return undefined;
  }
}
