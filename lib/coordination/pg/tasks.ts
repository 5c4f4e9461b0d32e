// Creating a task and its READY partitions on PostgreSQL in one transaction, as TaskStore.create.
import { NbdraidError } from '../../errors.js';
import type { Actor } from '../arrays.js';
import { json, toTask, type TaskRecord, type TaskRow } from '../records.js';
import { DEFAULT_MAX_ATTEMPTS, type NewTask } from '../tasks.js';
import { appendEvent } from './events.js';
import type { Tx } from './tx.js';

export async function createTask(c: Tx, t: NewTask, who: Actor): Promise<TaskRecord> {
  if (!t.kind) throw new NbdraidError('EINVAL', 'task', 'a task needs a kind');
  if (t.partitions.length === 0) throw new NbdraidError('EINVAL', `task ${t.kind}`, 'a task needs at least one partition');
  const { rows } = await c.query<TaskRow>(`INSERT INTO tasks (kind, array_name, dataset, initiator, state, max_attempts, partitions_total,
    created_at, updated_at) VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6, nbdraid_now_ms(), nbdraid_now_ms()) RETURNING *`,
  [t.kind, t.arrayName ?? null, JSON.stringify(t.dataset ?? null), t.initiator, t.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, t.partitions.length]);
  const id = rows[0].id;
  await c.query(`INSERT INTO partitions (task_id, idx, stripe_start, stripe_end, instructions, state, updated_at)
    SELECT $1, u.i - 1, u.s, u.e, u.ins, 'READY', nbdraid_now_ms()
    FROM unnest($2::bigint[], $3::bigint[], $4::text[]) WITH ORDINALITY AS u(s, e, ins, i)`,
  [id, t.partitions.map((p) => p.stripeStart), t.partitions.map((p) => p.stripeEnd), t.partitions.map((p) => json(p.instructions ?? null))]);
  await appendEvent(c, { ...who, kind: 'task.created', arrayName: t.arrayName, taskId: id, detail: { kind: t.kind, partitions: t.partitions.length, initiator: t.initiator } });
  return toTask(rows[0]);
}
