import type { z } from 'zod';

/**
 * Turns the first zod issue into one message that names the field, e.g.
 * `missing required field 'port'` or `field 'port' must be an integer from 1 to 65535`.
 */
export function describeIssue(error: z.ZodError, input: unknown): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid request body';
  const path = issue.path.map(String).join('.');
  if (!path) return issue.message;
  let value: unknown = input;
  for (const key of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[key as PropertyKey];
  if (value === undefined && issue.code === 'invalid_type') return `missing required field '${path}'`;
  return `field '${path}' ${issue.message}`;
}
