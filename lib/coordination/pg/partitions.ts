// Partition work on PostgreSQL, the semantics of ../partitions.ts: READY -> IN_PROGRESS by a claim
// that locks the lowest READY partition of the oldest RUNNING task with FOR UPDATE SKIP LOCKED
// (concurrent claimers pass each other's locked rows instead of queueing on them); the owner's
// transitions lock its partition row, then its task row, always in that order.
import { NbdraidError } from '../../errors.js';
import type { ClaimFilter, Claimed, PartitionRef } from '../partitions.js';
import { json, toPartition, toTask, type PartitionRow, type PartitionState, type TaskRecord, type TaskRow, type TaskState } from '../records.js';
import { appendEvent } from './events.js';
import type { Tx } from './tx.js';

export async function claim(c: Tx, me: number, f: ClaimFilter): Promise<Claimed | undefined> {
  await requireLive(c, me);
  const { rows } = await c.query<PartitionRow>(`SELECT p.* FROM partitions p JOIN tasks t ON t.id = p.task_id
    WHERE p.state = 'READY' AND t.state = 'RUNNING' AND t.partitions_done < t.partitions_total
      AND ($1::bigint IS NULL OR t.id = $1) AND ($2::text[] IS NULL OR t.kind = ANY($2)) AND ($3::text IS NULL OR t.array_name = $3)
    ORDER BY p.task_id, p.idx LIMIT 1 FOR UPDATE OF p SKIP LOCKED`, [f.taskId ?? null, f.kinds ?? null, f.arrayName ?? null]);
  if (rows.length === 0) return undefined;
  const { task_id: taskId, idx } = rows[0];
  const claimed = await c.query<PartitionRow>(`UPDATE partitions SET state = 'IN_PROGRESS', owner = $1, claimed_at = nbdraid_now_ms(),
    updated_at = nbdraid_now_ms() WHERE task_id = $2 AND idx = $3 RETURNING *`, [me, taskId, idx]);
  const task = await taskOf(c, taskId);
  await event(c, me, 'partition.claimed', task, idx);
  return { task, partition: toPartition(claimed.rows[0]) };
}

export async function checkpoint(c: Tx, me: number, ref: PartitionRef, cp: unknown, bytesDelta: number): Promise<TaskState> {
  const { task } = await owned(c, me, ref, 'checkpoint');
  await c.query('UPDATE partitions SET checkpoint = $1, bytes = bytes + $2, updated_at = nbdraid_now_ms() WHERE task_id = $3 AND idx = $4',
    [json(cp), bytesDelta, ref.taskId, ref.idx]);
  return task.state;
}

/** IN_PROGRESS -> COMPLETE by the owner; true when it was the task's last partition. */
export async function complete(c: Tx, me: number, ref: PartitionRef, bytesDelta: number): Promise<boolean> {
  const { task } = await owned(c, me, ref, 'complete');
  await c.query(`UPDATE partitions SET state = 'COMPLETE', owner = NULL, bytes = bytes + $1, updated_at = nbdraid_now_ms(),
    completed_at = nbdraid_now_ms() WHERE task_id = $2 AND idx = $3`, [bytesDelta, ref.taskId, ref.idx]);
  const done = await c.query<{ partitions_done: number; partitions_total: number }>(`UPDATE tasks SET partitions_done = partitions_done + 1,
    updated_at = nbdraid_now_ms() WHERE id = $1 RETURNING partitions_done, partitions_total`, [ref.taskId]);
  await event(c, me, 'partition.completed', task, ref.idx);
  const last = done.rows[0].partitions_done === done.rows[0].partitions_total;
  if (last) await event(c, me, 'task.partitions-complete', task);
  return last;
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
