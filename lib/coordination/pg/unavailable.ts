// Which PostgreSQL failures mean "the database is away" (restarting, or cut off by the network)
// rather than "this transition is wrong": those become EAGAIN, and a caller that can wait for the
// database (lease requests, checkpoints, heartbeats) tries again instead of failing its work.
import { NbdraidError } from '../../errors.js';
import { redactUri } from '../target.js';

/** Node socket errors and SQLSTATE classes 08 (connection) and 57P (operator intervention). */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOENT', 'ENOTFOUND', 'EAI_AGAIN']);
const MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|the database system is (starting up|shutting down|in recovery mode)/i;

export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (SOCKET_CODES.has(code) || code.startsWith('08') || code.startsWith('57P')) return true;
  return typeof e?.message === 'string' && MESSAGES.test(e.message);
}

/** `err` as the caller should see it: EAGAIN naming the database when it is away, else as it came. */
export function asUnavailable(err: unknown, uri: string): unknown {
  if (err instanceof NbdraidError || !isUnavailable(err)) return err;
  return new NbdraidError('EAGAIN', 'coordination', `PostgreSQL at ${redactUri(uri)} is unavailable (${(err as Error).message}); waiting for it`, { cause: err });
}
