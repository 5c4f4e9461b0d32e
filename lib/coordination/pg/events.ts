// The events journal on PostgreSQL: appended inside the transaction of the change it records.
import type { NewEvent } from '../events.js';
import type { Tx } from './tx.js';

export async function appendEvent(c: Tx, e: NewEvent): Promise<void> {
  const controller = e.controller ?? null;
  const actor = e.actor ?? (controller === null ? 'unknown' : `controller ${controller}`);
  await c.query(`INSERT INTO events (at, controller, actor, kind, array_name, task_id, partition_idx, detail)
    VALUES (nbdraid_now_ms(), $1, $2, $3, $4, $5, $6, $7)`,
  [controller, actor, e.kind, e.arrayName ?? null, e.taskId ?? null, e.partitionIdx ?? null, e.detail === undefined ? null : JSON.stringify(e.detail)]);
}

/** Keeps only the newest `keep` events. */
export async function pruneEvents(c: Tx, keep: number): Promise<void> {
  await c.query('DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - $1', [keep]);
}
