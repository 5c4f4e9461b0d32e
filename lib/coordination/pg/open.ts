// Opening the PostgreSQL coordination database: a pool over a postgres:// URI, with the schema
// migrated once (under an advisory lock, so controllers starting together do not race).
import pg from 'pg';
import { NbdraidError } from '../../errors.js';
import { redactUri } from '../target.js';
import { pgMigrations } from './schema.js';

/** Key of the advisory lock held while migrating (any constant shared by all controllers). */
const MIGRATION_LOCK = 0x6e626472;
const INT8 = 20;

/** bigint columns as numbers: every count and millisecond time here fits in 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export function isPostgresUri(uri: string): boolean {
  return /^postgres(ql)?:\/\//.test(uri);
}

/**
 * A pool on `uri` whose database carries the current schema. `timeoutMs` bounds a connection
 * attempt and each query on the client side: a server cut off by the network answers nothing,
 * and a caller must hear of it within its liveness bound, not after TCP gives up.
 */
export async function openPg(uri: string, opts: { max?: number; timeoutMs?: number } = {}): Promise<pg.Pool> {
  if (!isPostgresUri(uri)) throw new NbdraidError('EINVAL', 'coordination', `'${redactUri(uri)}' is not a postgres:// or postgresql:// URI`);
  const t = opts.timeoutMs ?? 0;
  const pool = new pg.Pool({ connectionString: uri, max: opts.max ?? 4, types, connectionTimeoutMillis: t, query_timeout: t || undefined, keepAlive: true });
  // A client's error (server restart, network cut) must not end the process, idle in the pool or
  // checked out between two queries (a transaction, the superblock lock): the query in flight,
  // or the next one, reports it.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => { client.on('error', () => undefined); });
  try {
    await migrate(pool);
  } catch (err) {
    await pool.end();
    throw new NbdraidError('EIO', 'coordination', `cannot prepare PostgreSQL at ${redactUri(uri)}: ${(err as Error).message}`, { cause: err });
  }
  return pool;
}

async function migrate(pool: pg.Pool): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await c.query('CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const { rows } = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version');
    const have = rows[0].v ?? 0;
    for (const m of pgMigrations) {
      if (m.version <= have) continue;
      await c.query('BEGIN');
      try {
        await c.query(m.sql);
        await c.query('INSERT INTO schema_version (version) VALUES ($1)', [m.version]);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    c.release();
  }
}
