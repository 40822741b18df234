/** A flat [name, value, ...] list and its names lower-cased, as the parsers hand them over. */
export const withNames = (raw: string[]): [string[], string[]] => [raw, raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())];
