// Tasks on PostgreSQL, the semantics of ../tasks.ts: creating one with its READY partitions in
// one transaction, creating one unless the same duty is active, listing them and their progress.
import { NbdraidError } from '../../errors.js';
import type { Actor } from '../arrays.js';
import {
  json, toPartition, toTask, type PartitionRecord, type PartitionRow, type PartitionState, type TaskRecord, type TaskRow, type TaskState,
} from '../records.js';
import { DEFAULT_MAX_ATTEMPTS, type NewTask, type TaskProgress, validate } from '../tasks.js';
import { appendEvent } from './events.js';
import type { Tx } from './tx.js';

/** An initiator that is not live (it stopped while its request was queued) leaves the task NULL, for the next live controller. */
export async function createTask(c: Tx, t: NewTask, who: Actor): Promise<TaskRecord> {
  validate(t);
  const { rows } = await c.query<TaskRow>(`INSERT INTO tasks (kind, array_name, dataset, initiator, state, max_attempts, partitions_total,
    created_at, updated_at) VALUES ($1, $2, $3, (SELECT id FROM controllers WHERE id = $4 AND state = 'live'), 'RUNNING', $5, $6,
    nbdraid_now_ms(), nbdraid_now_ms()) RETURNING *`,
  [t.kind, t.arrayName ?? null, JSON.stringify(t.dataset ?? null), t.initiator, t.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, t.partitions.length]);
  const id = rows[0].id;
  await c.query(`INSERT INTO partitions (task_id, idx, stripe_start, stripe_end, instructions, state, updated_at)
    SELECT $1, u.i - 1, u.s, u.e, u.ins, 'READY', nbdraid_now_ms()
    FROM unnest($2::bigint[], $3::bigint[], $4::text[]) WITH ORDINALITY AS u(s, e, ins, i)`,
  [id, t.partitions.map((p) => p.stripeStart), t.partitions.map((p) => p.stripeEnd), t.partitions.map((p) => json(p.instructions ?? null))]);
  await appendEvent(c, { ...who, kind: 'task.created', arrayName: t.arrayName, taskId: id, detail: { kind: t.kind, partitions: t.partitions.length, initiator: t.initiator } });
  return toTask(rows[0]);
}

/** Key space of the advisory lock that serialises createUnlessActive of one task kind. */
const DUTY_LOCK = 0x6e627461;

/**
 * Creates the task unless one of the same kind on the same array (any array when none is named,
 * as TaskStore.createUnlessActive) is still active. A transaction-scoped advisory lock on the
 * kind makes the check and the insert one step across processes: the second caller waits, then
 * its check (a fresh snapshot, READ COMMITTED) sees the first one's task.
 */
export async function createTaskUnlessActive(c: Tx, t: NewTask, who: Actor): Promise<TaskRecord | undefined> {
  validate(t);
  await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [DUTY_LOCK, t.kind]);
  const { rows } = await c.query(`SELECT 1 FROM tasks WHERE kind = $1 AND state IN ('RUNNING', 'PAUSED', 'COMPLETING')
    AND ($2::text IS NULL OR array_name = $2) LIMIT 1`, [t.kind, t.arrayName ?? null]);
  return rows.length > 0 ? undefined : createTask(c, t, who);
}

/** All tasks of `array` (or only those not yet finished), oldest first. */
export async function listTasks(c: Tx, array: string | null, activeOnly: boolean): Promise<TaskRecord[]> {
  const { rows } = await c.query<TaskRow>(`SELECT * FROM tasks WHERE ($1::text IS NULL OR array_name = $1)
    ${activeOnly ? "AND state IN ('RUNNING', 'PAUSED', 'COMPLETING')" : ''} ORDER BY id`, [array]);
  return rows.map(toTask);
}

export async function listPartitions(c: Tx, taskId: number): Promise<PartitionRecord[]> {
  const { rows } = await c.query<PartitionRow>('SELECT * FROM partitions WHERE task_id = $1 ORDER BY idx', [taskId]);
  return rows.map(toPartition);
}

/** Progress of one task, as TaskStore.progress (sums cast back to bigint, which reads as a number). */
export async function progress(c: Tx, task: TaskRecord): Promise<TaskProgress> {
  const counts: Record<PartitionState, number> = { READY: 0, IN_PROGRESS: 0, COMPLETE: 0, FAILED: 0 };
  let bytes = 0, stripesTotal = 0, stripesDone = 0;
  const { rows } = await c.query<{ state: PartitionState; n: number; bytes: number; stripes: number }>(`SELECT state, count(*) AS n,
    sum(bytes)::bigint AS bytes, sum(stripe_end - stripe_start)::bigint AS stripes FROM partitions WHERE task_id = $1 GROUP BY state`, [task.id]);
  for (const r of rows) {
    counts[r.state] = r.n;
    bytes += r.bytes;
    stripesTotal += r.stripes;
    if (r.state === 'COMPLETE') stripesDone += r.stripes;
  }
  const busy = await c.query<PartitionRow>(`SELECT * FROM partitions WHERE task_id = $1 AND state = 'IN_PROGRESS' ORDER BY idx`, [task.id]);
  const inProgress = busy.rows.map(toPartition).map((p) => ({
    idx: p.idx, owner: p.owner as number, stripeStart: p.stripeStart, stripeEnd: p.stripeEnd, bytes: p.bytes, checkpoint: p.checkpoint,
  }));
  return { task, counts, bytes, stripesTotal, stripesDone, inProgress };
}

export async function getTask(c: Tx, id: number): Promise<TaskRecord | undefined> {
  const { rows } = await c.query<TaskRow>('SELECT * FROM tasks WHERE id = $1', [id]);
  return rows[0] ? toTask(rows[0]) : undefined;
}

export async function requireTask(c: Tx, id: number, lock = false): Promise<TaskRecord> {
  const { rows } = await c.query<TaskRow>(`SELECT * FROM tasks WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
  if (!rows[0]) throw new NbdraidError('ENOENT', `task ${id}`, `no such task; list tasks with 'nbdraid tasks'`);
  return toTask(rows[0]);
}

/** TaskStore's pause / resume / cancel: one state change of a locked task, with its event. */
export async function transitionTask(c: Tx, id: number, from: TaskState[], to: TaskState, kind: string, who: Actor, reason?: string): Promise<TaskRecord> {
  const t = await requireTask(c, id, true);
  if (!from.includes(t.state)) {
    throw new NbdraidError('EINVAL', `task ${id}`, `is ${t.state}; only a ${from.join(' or ')} task can be ${kind.split('.')[1]} (see 'nbdraid tasks')`);
  }
  await c.query(`UPDATE tasks SET state = $1, reason = COALESCE($2, reason), updated_at = nbdraid_now_ms(),
    finished_at = CASE WHEN $1 IN ('DONE', 'FAILED', 'CANCELLED') THEN nbdraid_now_ms() ELSE finished_at END
    WHERE id = $3 AND state = $4`, [to, reason ?? null, id, t.state]);
  await appendEvent(c, { ...who, kind, arrayName: t.arrayName, taskId: id, detail: { from: t.state, to, reason } });
  return requireTask(c, id);
}
