import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type AuthResult = 'ok' | 'missing' | 'wrong';

/**
 * Checks `Authorization: Bearer <token>` in constant time (both sides hashed to equal length first,
 * so neither the content nor the length of the token leaks through timing).
 */
export function checkBearer(req: IncomingMessage, token: string | undefined): AuthResult {
  if (!token) return 'ok';
  const header = req.headers.authorization;
  if (!header) return 'missing';
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!match) return 'wrong';
  const given = createHash('sha256').update(match[1]!).digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) ? 'ok' : 'wrong';
}
