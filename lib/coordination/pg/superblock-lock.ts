// The superblock writers' lock across hosts: a session advisory lock of the coordination
// database, keyed by the array's name, held on a connection of its own while the members are
// written. A connection lost while holding it unlocks it (the server ends the session).
import type pg from 'pg';
import { asUnavailable } from './unavailable.js';

/** The advisory-lock key space of superblock writers (the array's name hashed into it). */
const SUPERBLOCK_LOCK_SPACE = 0x6e627362;

/** `uri`: the database's, for errors: a database away is EAGAIN naming it (unavailable.ts), as for every call. */
export function superblockLock(pool: pg.Pool, uri: string): (arrayName: string) => Promise<() => Promise<void>> {
  return async (arrayName) => {
    const c = await pool.connect().catch((err: unknown) => { throw asUnavailable(err, uri); });
    const args = [SUPERBLOCK_LOCK_SPACE, arrayName];
    try {
      await c.query('SELECT pg_advisory_lock($1::int4, hashtext($2))', args);
    } catch (err) {
      c.release(true);
      throw asUnavailable(err, uri);
    }
    return async () => {
      const ok = await c.query('SELECT pg_advisory_unlock($1::int4, hashtext($2))', args).then(() => true, () => false);
      c.release(!ok); // a connection that could not unlock is closed, which unlocks
    };
  };
}
