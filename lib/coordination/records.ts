// Row shapes of tasks and partitions and their conversion to records.

export type TaskState = 'RUNNING' | 'PAUSED' | 'COMPLETING' | 'DONE' | 'FAILED' | 'CANCELLED';
export type PartitionState = 'READY' | 'IN_PROGRESS' | 'COMPLETE' | 'FAILED';
export const TERMINAL_TASK_STATES: readonly TaskState[] = ['DONE', 'FAILED', 'CANCELLED'];

export interface TaskRecord {
  id: number; kind: string; arrayName: string | null; dataset: unknown; initiator: number | null;
  state: TaskState; reason: string | null; result: unknown; maxAttempts: number;
  partitionsTotal: number; partitionsDone: number; createdAt: number; updatedAt: number; finishedAt: number | null;
}

export interface PartitionRecord {
  taskId: number; idx: number; stripeStart: number; stripeEnd: number; instructions: unknown;
  state: PartitionState; owner: number | null; attempts: number; checkpoint: unknown; bytes: number;
  error: string | null; claimedAt: number | null; updatedAt: number; completedAt: number | null;
}

export interface TaskRow {
  id: number; kind: string; array_name: string | null; dataset: string; initiator: number | null;
  state: TaskState; reason: string | null; result: string | null; max_attempts: number;
  partitions_total: number; partitions_done: number; created_at: number; updated_at: number; finished_at: number | null;
}

export interface PartitionRow {
  task_id: number; idx: number; stripe_start: number; stripe_end: number; instructions: string;
  state: PartitionState; owner: number | null; attempts: number; checkpoint: string | null; bytes: number;
  error: string | null; claimed_at: number | null; updated_at: number; completed_at: number | null;
}

export function toTask(r: TaskRow): TaskRecord {
  return {
    id: r.id, kind: r.kind, arrayName: r.array_name, dataset: JSON.parse(r.dataset), initiator: r.initiator,
    state: r.state, reason: r.reason, result: r.result === null ? null : JSON.parse(r.result), maxAttempts: r.max_attempts,
    partitionsTotal: r.partitions_total, partitionsDone: r.partitions_done, createdAt: r.created_at,
    updatedAt: r.updated_at, finishedAt: r.finished_at,
  };
}

export function toPartition(r: PartitionRow): PartitionRecord {
  return {
    taskId: r.task_id, idx: r.idx, stripeStart: r.stripe_start, stripeEnd: r.stripe_end,
    instructions: JSON.parse(r.instructions), state: r.state, owner: r.owner, attempts: r.attempts,
    checkpoint: r.checkpoint === null ? null : JSON.parse(r.checkpoint), bytes: r.bytes, error: r.error,
    claimedAt: r.claimed_at, updatedAt: r.updated_at, completedAt: r.completed_at,
  };
}

/** JSON for a column: undefined is stored as NULL. */
export function json(v: unknown): string | null {
  return v === undefined ? null : JSON.stringify(v);
}
