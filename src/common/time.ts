/** RFC 3339 UTC with a `+00:00` offset and whole seconds, as the original registry writes timestamps. */
export function rfc3339(ms: number = Date.now()): string {
  return new Date(ms).toISOString().slice(0, 19) + '+00:00';
}
