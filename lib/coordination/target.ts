// Where the coordination object lives: the SQLite database in the state directory (the default,
// one host), or a PostgreSQL database named by a postgres:// URI (controllers on several hosts).
// One parse for every verb, so `--coordination` and NBDRAID_COORDINATION mean the same everywhere.
import { NbdraidError } from '../errors.js';

export type CoordinationTarget =
  | { kind: 'sqlite'; stateDir: string }
  | { kind: 'postgres'; uri: string; deadAfterMs: number };

/**
 * T, the liveness bound on PostgreSQL: a controller whose heartbeat (database clock) is older
 * than this is dead and its work passes on. A controller that cannot renew its heartbeat stops
 * its member I/O by itself well before T on its own clock (docs/deployment.md).
 */
export const DEFAULT_DEAD_AFTER_MS = 5000;
/** Least T accepted: heartbeats run every 250 ms, and a bound of a few beats is noise. */
export const MIN_DEAD_AFTER_MS = 1000;

/** The backend a run uses: `uri` (from --coordination or NBDRAID_COORDINATION) or the state directory. */
export function coordinationTarget(stateDir: string, uri?: string, deadAfterMs = DEFAULT_DEAD_AFTER_MS): CoordinationTarget {
  if (uri === undefined || uri === '' || uri === 'sqlite') return { kind: 'sqlite', stateDir };
  if (!/^postgres(ql)?:\/\//.test(uri)) {
    throw new NbdraidError('EINVAL', '--coordination', `'${redactUri(uri)}' is not a coordination database: give postgres://USER@HOST:PORT/DB (or postgresql://), or leave it out for the SQLite database in --state`);
  }
  if (!(Number.isFinite(deadAfterMs) && deadAfterMs >= MIN_DEAD_AFTER_MS)) {
    throw new NbdraidError('EINVAL', '--dead-after', `must be at least ${MIN_DEAD_AFTER_MS / 1000} s, got ${deadAfterMs / 1000} s`);
  }
  return { kind: 'postgres', uri, deadAfterMs };
}

/** A URI fit for messages and logs: any password replaced by '***'. */
export function redactUri(uri: string): string {
  // The authority ends at the last '@' before the path, query or fragment that follows it; a
  // password may itself hold '@', '/' or ':' (libpq takes it so when it is not percent-encoded).
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/i.exec(uri);
  let out = uri;
  if (m) {
    const rest = m[2];
    const q = rest.search(/[?#]/);
    const at = (q >= 0 ? rest.slice(0, q) : rest).lastIndexOf('@');
    const user = at >= 0 ? rest.slice(0, at) : '';
    if (at >= 0 && user.includes(':')) out = `${m[1]}${user.slice(0, user.indexOf(':'))}:***@${rest.slice(at + 1)}`;
  }
  return out.replace(/([?&]password=)[^&#]*/i, '$1***');
}

/** Says where a target is, for messages. */
export function describeTarget(t: CoordinationTarget): string {
  return t.kind === 'sqlite' ? `the SQLite database in ${t.stateDir}` : `PostgreSQL at ${redactUri(t.uri)}`;
}
