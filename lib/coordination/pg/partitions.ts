// Partition work on PostgreSQL, the semantics of ../partitions.ts. The claim and the completion,
// the hot pair, are server-side functions (functions.ts, hot-path.ts); here are the owner's other
// transitions, each locking its partition row, then touching its task row, always in that order.
import { NbdraidError } from '../../errors.js';
import type { PartitionRef } from '../partitions.js';
import { json, toTask, type PartitionRow, type PartitionState, type TaskRecord, type TaskRow, type TaskState } from '../records.js';
import { appendEvent } from './events.js';
import type { Tx } from './tx.js';

export async function checkpoint(c: Tx, me: number, ref: PartitionRef, cp: unknown, bytesDelta: number): Promise<TaskState> {
  const { task } = await owned(c, me, ref, 'checkpoint');
  await c.query('UPDATE partitions SET checkpoint = $1, bytes = bytes + $2, updated_at = nbdraid_now_ms() WHERE task_id = $3 AND idx = $4',
    [json(cp), bytesDelta, ref.taskId, ref.idx]);
  return task.state;
}

/** A failed attempt: READY again (checkpoint kept), or after maxAttempts FAILED, and its task with it. */
export async function fail(c: Tx, me: number, ref: PartitionRef, reason: string): Promise<PartitionState> {
  const { task, attempts } = await owned(c, me, ref, 'fail');
  if (attempts + 1 < task.maxAttempts) {
    await c.query(`UPDATE partitions SET state = 'READY', owner = NULL, attempts = attempts + 1, error = $1, updated_at = nbdraid_now_ms()
      WHERE task_id = $2 AND idx = $3`, [reason, ref.taskId, ref.idx]);
    await event(c, me, 'partition.attempt-failed', task, ref.idx, { attempt: attempts + 1, reason });
    return 'READY';
  }
  await c.query(`UPDATE partitions SET state = 'FAILED', owner = NULL, attempts = attempts + 1, error = $1, updated_at = nbdraid_now_ms()
    WHERE task_id = $2 AND idx = $3`, [reason, ref.taskId, ref.idx]);
  const why = `partition ${ref.idx} failed ${attempts + 1} times: ${reason}`;
  await c.query(`UPDATE tasks SET state = 'FAILED', reason = $1, updated_at = nbdraid_now_ms(), finished_at = nbdraid_now_ms()
    WHERE id = $2 AND state IN ('RUNNING', 'PAUSED')`, [why, ref.taskId]);
  await event(c, me, 'partition.failed', task, ref.idx, { reason });
  await event(c, me, 'task.failed', task, undefined, { reason: why });
  return 'FAILED';
}

/** The owner gives the partition back unfinished: READY with its checkpoint. */
export async function release(c: Tx, me: number, ref: PartitionRef): Promise<void> {
  const { task } = await owned(c, me, ref, 'release', true);
  await c.query(`UPDATE partitions SET state = 'READY', owner = NULL, updated_at = nbdraid_now_ms() WHERE task_id = $1 AND idx = $2`, [ref.taskId, ref.idx]);
  await event(c, me, 'partition.released', task, ref.idx, { why: 'owner' });
}

/** The refusals shared by checkpoint, complete, fail and release; locks the partition row. */
async function owned(c: Tx, me: number, ref: PartitionRef, what: string, allowEnded = false): Promise<{ task: TaskRecord; attempts: number }> {
  await requireLive(c, me);
  const ctx = `task ${ref.taskId} partition ${ref.idx}`;
  const { rows } = await c.query<PartitionRow>('SELECT * FROM partitions WHERE task_id = $1 AND idx = $2 FOR UPDATE', [ref.taskId, ref.idx]);
  if (rows.length === 0) throw new NbdraidError('ENOENT', ctx, 'no such partition');
  const p = rows[0];
  const task = await taskOf(c, ref.taskId);
  if (p.state !== 'IN_PROGRESS') throw new NbdraidError('ESTALE', ctx, `is ${p.state}, not IN_PROGRESS; cannot ${what}`);
  if (p.owner !== me) throw new NbdraidError('EPERM', ctx, `is owned by controller ${p.owner}, not ${me}; cannot ${what}`);
  if (!allowEnded && (task.state === 'CANCELLED' || task.state === 'FAILED')) {
    throw new NbdraidError('ECANCELED', ctx, `task is ${task.state}${task.reason ? ` (${task.reason})` : ''}; release the partition`);
  }
  return { task, attempts: p.attempts };
}

/** A reaped controller works no more: its row, not its own belief, decides. */
async function requireLive(c: Tx, me: number): Promise<void> {
  const { rows } = await c.query<{ state: string }>('SELECT state FROM controllers WHERE id = $1', [me]);
  if (rows[0]?.state !== 'live') {
    throw new NbdraidError('ESTALE', `controller ${me}`, `is ${rows[0]?.state ?? 'unknown'}; register again before working`);
  }
}

async function taskOf(c: Tx, id: number): Promise<TaskRecord> {
  const { rows } = await c.query<TaskRow>('SELECT * FROM tasks WHERE id = $1', [id]);
  if (rows.length === 0) throw new NbdraidError('ENOENT', `task ${id}`, `no such task; list tasks with 'nbdraid tasks'`);
  return toTask(rows[0]);
}

function event(c: Tx, me: number, kind: string, task: TaskRecord, idx?: number, detail?: unknown): Promise<void> {
  return appendEvent(c, { controller: me, kind, arrayName: task.arrayName, taskId: task.id, partitionIdx: idx, detail });
}
