// Claim and complete through the server-side functions (functions.ts): one statement each, its
// own transaction. A refusal raised there becomes the NbdraidError the SQLite backend throws.
import type pg from 'pg';
import { NbdraidError, isErrorCode } from '../../errors.js';
import type { ClaimFilter, Claimed, PartitionRef } from '../partitions.js';
import { toPartition, toTask, type PartitionRow, type TaskRow } from '../records.js';

const REFUSAL = 'NB001';

function refusal(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e.code !== REFUSAL || !e.message) return err;
  const [code, context, ...msg] = e.message.split('|');
  return new NbdraidError(isErrorCode(code) ? code : 'EIO', context, msg.join('|'));
}

export async function claimOne(pool: pg.Pool, me: number, f: ClaimFilter): Promise<Claimed | undefined> {
  try {
    const { rows } = await pool.query<PartitionRow & { task: string }>(`SELECT c.*, row_to_json(t)::text AS task
      FROM nbdraid_claim($1, $2, $3, $4) c JOIN tasks t ON t.id = c.task_id`, [me, f.taskId ?? null, f.kinds ?? null, f.arrayName ?? null]);
    if (rows.length === 0) return undefined;
    const { task, ...partition } = rows[0];
    return { task: toTask(JSON.parse(task) as TaskRow), partition: toPartition(partition) };
  } catch (err) {
    throw refusal(err);
  }
}

/** IN_PROGRESS -> COMPLETE by the owner; true when it was the task's last partition. */
export async function completeOne(pool: pg.Pool, me: number, ref: PartitionRef, bytesDelta: number): Promise<boolean> {
  try {
    const { rows } = await pool.query<{ last: boolean }>('SELECT nbdraid_complete($1, $2, $3, $4) AS last', [me, ref.taskId, ref.idx, bytesDelta]);
    return rows[0].last;
  } catch (err) {
    throw refusal(err);
  }
}
