// Opening the coordination database: one SQLite file per state directory, WAL journal so readers
// never block the writer, a busy timeout so writers queue instead of failing, schema migrated to
// the latest version on open.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { NbdraidError } from '../errors.js';
import { migrations } from './schema.js';
import { checkDatabase, databaseError } from './db-check.js';

export type { Database } from 'better-sqlite3';

export interface OpenOptions {
  /** How long a writer waits for the write lock before SQLITE_BUSY (ms). */
  busyTimeoutMs?: number;
}

export const DATABASE_FILE = 'nbdraid.db';

export function databasePath(stateDir: string): string {
  return join(stateDir, DATABASE_FILE);
}

export function openDatabase(stateDir: string, opts: OpenOptions = {}): Database.Database {
  try {
    mkdirSync(stateDir, { recursive: true });
  } catch (err) {
    throw new NbdraidError('EIO', `state ${stateDir}`, `cannot create the state directory: ${(err as Error).message}; pass --state DIR`, { cause: err });
  }
  let db: Database.Database;
  try {
    db = new Database(databasePath(stateDir), { timeout: opts.busyTimeoutMs ?? 10_000 });
  } catch (err) {
    throw new NbdraidError('EIO', `state ${stateDir}`, `cannot open the coordination database: ${(err as Error).message}`, { cause: err });
  }
  try {
    checkDatabase(db); // before anything writes: a foreign file is left as it was
    db.pragma('journal_mode = WAL');
    // NORMAL in WAL survives any process crash; write-intent bits switch to FULL (leases.ts).
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db);
  } catch (err) {
    db.close();
    throw databaseError(databasePath(stateDir), err);
  }
  return db;
}

/** Applies every migration newer than the recorded version, each in its own IMMEDIATE transaction. */
export function migrate(db: Database.Database): number {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const current = db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_version');
  const record = db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)');
  for (const m of migrations) {
    db.transaction(() => {
      // Re-read inside the write lock: another process may have migrated meanwhile.
      if ((current.get() as { v: number }).v >= m.version) return;
      db.exec(m.sql);
      record.run(m.version, Date.now());
    }).immediate();
  }
  const v = (current.get() as { v: number }).v;
  const latest = migrations[migrations.length - 1].version;
  if (v > latest) {
    throw new NbdraidError('ENOTSUP', 'coordination database', `schema version ${v} is newer than this nbdraid (${latest}); upgrade nbdraid`);
  }
  return v;
}

/** PRAGMA data_version: changes whenever another connection commits. Costs no disk I/O. */
export function dataVersion(db: Database.Database): number {
  return db.pragma('data_version', { simple: true }) as number;
}
