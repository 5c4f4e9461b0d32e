// The task transitions around a completion action on PostgreSQL, the semantics of CompletionRows
// (../completion.ts): each a guarded UPDATE, whose row lock makes concurrent callers take turns
// and re-check the guard, so only the initiator begins, and only once.
import { json, toTask, type TaskRecord, type TaskRow } from '../records.js';
import { appendEvent } from './events.js';
import type { Tx } from './tx.js';

/** Adopts tasks without an initiator, but only while `me` is live by its row. */
export async function adoptOrphans(c: Tx, me: number): Promise<number[]> {
  const { rows } = await c.query<{ id: number }>(`UPDATE tasks SET initiator = $1,
    state = CASE state WHEN 'COMPLETING' THEN 'RUNNING' ELSE state END, updated_at = nbdraid_now_ms()
    WHERE initiator IS NULL AND state IN ('RUNNING', 'PAUSED', 'COMPLETING')
      AND EXISTS (SELECT 1 FROM controllers WHERE id = $1 AND state = 'live') RETURNING id`, [me]);
  const ids = rows.map((r) => r.id).sort((a, b) => a - b);
  for (const id of ids) await appendEvent(c, { controller: me, kind: 'task.adopted', taskId: id, detail: { from: null, to: me } });
  return ids;
}

/** Our tasks whose partitions are all COMPLETE and whose action has not begun. */
export async function ready(c: Tx, me: number): Promise<TaskRecord[]> {
  const { rows } = await c.query<TaskRow>(`SELECT * FROM tasks WHERE initiator = $1 AND state = 'RUNNING'
    AND partitions_done = partitions_total ORDER BY id`, [me]);
  return rows.map(toTask);
}

/** RUNNING -> COMPLETING; false when another got there first or the task moved on. */
export async function begin(c: Tx, me: number, task: TaskRecord): Promise<boolean> {
  const r = await c.query(`UPDATE tasks SET state = 'COMPLETING', updated_at = nbdraid_now_ms()
    WHERE id = $1 AND state = 'RUNNING' AND initiator = $2 AND partitions_done = partitions_total`, [task.id, me]);
  if (r.rowCount !== 1) return false;
  await appendEvent(c, { controller: me, kind: 'task.completing', arrayName: task.arrayName, taskId: task.id });
  return true;
}

/** COMPLETING -> DONE with the result, or FAILED with the reason; true when it moved. */
export async function finish(c: Tx, me: number, task: TaskRecord, result: unknown, failure: string | null): Promise<boolean> {
  const r = await c.query(`UPDATE tasks SET state = $1, result = $2, reason = $3, updated_at = nbdraid_now_ms(), finished_at = nbdraid_now_ms()
    WHERE id = $4 AND state = 'COMPLETING' AND initiator = $5`, [failure === null ? 'DONE' : 'FAILED', json(result), failure, task.id, me]);
  if (r.rowCount !== 1) return false;
  await appendEvent(c, { controller: me, kind: failure === null ? 'task.done' : 'task.failed', arrayName: task.arrayName,
    taskId: task.id, detail: failure === null ? { result } : { reason: failure } });
  return true;
}
