// Errors PostgreSQL (or the connection to it) raises after the database was opened, as one
// clear line: an SQLSTATE or a refused/reset connection, with what to check.
import { NbdraidError } from '../errors.js';

interface PgLike { code: string; message?: string }

/** An error from the pg driver: a five-character SQLSTATE, or a network failure of its socket. */
export function isPgError(err: unknown): err is PgLike {
  if (err instanceof NbdraidError || typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (/^[0-9A-Z]{5}$/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code));
}

/** `err` as an NbdraidError naming `where` (already redacted: describeTarget). */
export function pgError(where: string, err: PgLike): NbdraidError {
  const what = /^[0-9A-Z]{5}$/.test(err.code) ? `SQLSTATE ${err.code}` : err.code;
  const hint = err.code.startsWith('08') || !/^[0-9A-Z]{5}$/.test(err.code)
    ? 'check that the server runs and accepts connections, then run the verb again'
    : 'check the server log; run the verb again once it is resolved';
  return new NbdraidError('EIO', 'coordination', `${where}: ${what}: ${(err.message ?? '').split('\n')[0]}; ${hint}`);
}
