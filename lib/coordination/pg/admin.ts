// The CLI's AdminStore on PostgreSQL: each call one transaction on a small pool, with the
// semantics of the SQLite stores (same errors, revision bumps, events with actor 'cli').
import type pg from 'pg';
import { superblockLock } from './superblock-lock.js';
import { NbdraidError } from '../../errors.js';
import type { AdminStore } from '../admin.js';
import { redactUri } from '../target.js';
import type { CoordinationTarget } from '../target.js';
import { arrayRevision, createArray, getArray, listArrays, recordWritten, removeArray, requireArray, unsynced, updateArray, written } from './arrays.js';
import { listControllers } from './controllers.js';
import { listEvents } from './events.js';
import { requireResync } from './leases.js';
import { openPg } from './open.js';
import { createTask, getTask, listPartitions, listTasks, progress, requireTask, transitionTask } from './tasks.js';
import { type Tx, inTx } from './tx.js';

const who = { actor: 'cli' };

export async function openPgAdminStore(target: CoordinationTarget & { kind: 'postgres' }): Promise<AdminStore> {
  let pool: pg.Pool;
  try {
    pool = await openPg(target.uri, { max: 2 });
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause ?? err;
    const why = (cause as Error)?.message ?? String(cause);
    throw new NbdraidError('EIO', 'coordination', `cannot reach PostgreSQL at ${redactUri(target.uri)}: ${redactText(why, target.uri)}; `
      + 'check that the server runs and accepts connections there, and the user, password and database in --coordination (or NBDRAID_COORDINATION)');
  }
  const tx = <T>(fn: (c: Tx) => Promise<T>, notify = true): Promise<T> => inTx(pool, fn, notify);
  const read = <T>(fn: (c: Tx) => Promise<T>): Promise<T> => inTx(pool, fn, false);
  return {
    target,
    getArray: (n) => read((c) => getArray(c, n)),
    requireArray: (n) => read((c) => requireArray(c, n)),
    listArrays: () => read((c) => listArrays(c)),
    createArray: (r) => tx((c) => createArray(c, r, who)),
    updateArray: (n, m) => tx((c) => updateArray(c, n, who, m)),
    removeArray: (n) => tx((c) => removeArray(c, n, who)),
    written: (n) => read((c) => written(c, n)),
    recordWritten: (n, e, s) => tx((c) => recordWritten(c, n, e, s)),
    revision: (n) => read((c) => arrayRevision(c, n)),
    // One snapshot for the three reads, as SQLite's one transaction gives.
    superblockSnapshot: (n) => read(async (c) => {
      await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      return { rec: await requireArray(c, n), written: await written(c, n), unsynced: await unsynced(c, n) };
    }),
    requireResync: (n, regions) => tx((c) => requireResync(c, null, n, regions)),
    createTask: (t) => tx((c) => createTask(c, t, who)),
    getTask: (id) => read((c) => getTask(c, id)),
    requireTask: (id) => read((c) => requireTask(c, id)),
    listTasks: (o = {}) => read((c) => listTasks(c, o.arrayName ?? null, o.activeOnly ?? false)),
    partitions: (id) => read((c) => listPartitions(c, id)),
    progress: (id) => read(async (c) => progress(c, await requireTask(c, id))),
    pauseTask: (id) => tx((c) => transitionTask(c, id, ['RUNNING'], 'PAUSED', 'task.paused', who)),
    resumeTask: (id) => tx((c) => transitionTask(c, id, ['PAUSED'], 'RUNNING', 'task.resumed', who)),
    cancelTask: (id, reason = 'cancelled by the operator') => tx((c) => transitionTask(c, id, ['RUNNING', 'PAUSED'], 'CANCELLED', 'task.cancelled', who, reason)),
    listControllers: () => read((c) => listControllers(c, target.deadAfterMs)),
    listEvents: (q) => read((c) => listEvents(c, q)),
    lockSuperblocks: superblockLock(pool, target.uri),
    close: () => pool.end(),
  };
}

/** `text` with the URI (and so its password) replaced by its redacted form. */
function redactText(text: string, uri: string): string {
  return text.split(uri).join(redactUri(uri));
}
