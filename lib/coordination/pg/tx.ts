// One transition, one transaction: BEGIN, the statements, a NOTIFY on the change channel, COMMIT.
// A deadlock or serialization failure is retried a bounded number of times (the server rolled
// the attempt back whole, so retrying cannot apply it twice).
import type pg from 'pg';

export const CHANGE_CHANNEL = 'nbdraid_change';
const RETRYABLE = new Set(['40P01', '40001']);
const ATTEMPTS = 5;

export type Tx = pg.PoolClient;

/**
 * Runs `fn` in a transaction. `notify` says, given the result, whether the transaction changed
 * anything others wait on (false for heartbeats, or a reap that found no one).
 */
export async function inTx<T>(pool: pg.Pool, fn: (c: Tx) => Promise<T>, notify: boolean | ((out: T) => boolean) = true): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const c = await pool.connect();
    let broken = false;
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      if (typeof notify === 'function' ? notify(out) : notify) await c.query(`NOTIFY ${CHANGE_CHANNEL}`);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => { broken = true; });
      const code = (err as { code?: string }).code;
      if (attempt >= ATTEMPTS || code === undefined || !RETRYABLE.has(code)) throw err;
    } finally {
      c.release(broken);
    }
  }
}
