/**
 * Whether a parsed JSON value nests objects and arrays deeper than `limit` levels (the value itself
 * is level 1). Iterative, so a hostile body cannot overflow the stack here; checked before anything
 * recursive (JSON.stringify, structured clone) touches the value.
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}
