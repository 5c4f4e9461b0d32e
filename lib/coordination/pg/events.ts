// The events journal on PostgreSQL: appended inside the transaction of the change it records.
import { type EventQuery, type EventRecord, type EventRow, type NewEvent, toEvent } from '../events.js';
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

/** The newest events matching `q` (at most q.limit, 100 by default), returned oldest first. */
export async function listEvents(c: Tx, q: EventQuery): Promise<EventRecord[]> {
  const { rows } = await c.query<EventRow>(`SELECT * FROM events WHERE id > $1 AND ($2::bigint IS NULL OR task_id = $2)
    AND ($3::text IS NULL OR array_name = $3) AND ($4::text IS NULL OR left(kind, length($4)) = $4)
    ORDER BY id DESC LIMIT $5`, [q.sinceId ?? 0, q.taskId ?? null, q.arrayName ?? null, q.kindPrefix ?? null, q.limit ?? 100]);
  return rows.reverse().map(toEvent);
}
