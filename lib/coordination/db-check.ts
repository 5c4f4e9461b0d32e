// Checks a coordination database before use, and turns SQLite's failures into one clear line: which
// file, what is wrong, and how to rebuild the state from the members (they alone tell the truth).
import type Database from 'better-sqlite3';
import { NbdraidError } from '../errors.js';

const REBUILD = "move it aside (with its -wal and -shm files) and rebuild the state from the members with 'nbdraid assemble NAME MEMBER...' ('nbdraid examine MEMBER' shows the array a member belongs to)";

/** Refuses a damaged file, or a SQLite file holding another program's tables; changes nothing. */
export function checkDatabase(db: Database.Database): void {
  const rows = db.pragma('quick_check(1)') as { quick_check: string }[];
  const first = rows[0]?.quick_check ?? 'ok';
  if (first !== 'ok') throw damaged(first.replace(/\*\*\* in database \w+ \*\*\*/, '').replace(/\s+/g, ' ').trim());
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[])
    .map((r) => r.name);
  if (tables.length > 0 && !tables.includes('schema_version')) {
    const shown = tables.slice(0, 5).join(', ') + (tables.length > 5 ? ', ...' : '');
    throw new NbdraidError('EINVAL', 'coordination database', `its tables are not nbdraid's (${shown}): it belongs to another program; point --state at nbdraid's state directory, or ${REBUILD}`);
  }
}

function damaged(what: string): NbdraidError {
  return new NbdraidError('EIO', 'coordination database', `damaged or truncated (${what}); ${REBUILD}`);
}

/** The one-line error for a failure while opening or reading the database file `file`. */
export function databaseError(file: string, err: unknown): NbdraidError {
  const e = err as { code?: string; message?: string; name?: string };
  const context = `coordination database ${file}`;
  if (err instanceof NbdraidError) {
    if (err.context !== 'coordination database') return err;
    return new NbdraidError(err.code, context, err.message.slice(err.context.length + 2), { cause: err });
  }
  let what: string;
  const code = e?.code ?? '';
  if (code === 'SQLITE_NOTADB') what = 'not a SQLite database (garbage, or a file of another kind)';
  else if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_IOERR_SHORT_READ') what = `damaged or truncated (${e.message})`;
  else return new NbdraidError('EIO', context, e?.message ?? String(err), { cause: err });
  return new NbdraidError('EIO', context, `${what}; ${REBUILD}`, { cause: err });
}

/** Whether `err` came from SQLite itself (better-sqlite3's SqliteError). */
export function isSqliteError(err: unknown): boolean {
  return (err as Error)?.name === 'SqliteError';
}
