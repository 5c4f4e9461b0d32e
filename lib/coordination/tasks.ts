// Tasks and their partitions as a whole: creation of the coordination object, reading it back,
// progress, and the operator's pause / resume / cancel. Claiming and working partitions is in
// partitions.ts; the completion action in completion.ts.
import type { Database, Statement } from 'better-sqlite3';
import { NbdraidError } from '../errors.js';
import type { Actor } from './arrays.js';
import { EventLog } from './events.js';
import {
  json, toPartition, toTask, type PartitionRecord, type PartitionRow, type PartitionState, type TaskRecord,
  type TaskRow, type TaskState,
} from './records.js';

export interface NewPartition { stripeStart: number; stripeEnd: number; instructions?: unknown }
export interface NewTask {
  kind: string;
  arrayName?: string | null;
  /** The data set operated on (JSON). */
  dataset?: unknown;
  partitions: NewPartition[];
  /** Failed attempts after which a partition, and so the task, is FAILED. */
  maxAttempts?: number;
  /** The initiating controller; null lets the first live controller adopt the task. */
  initiator: number | null;
}

export interface TaskProgress {
  task: TaskRecord;
  counts: Record<PartitionState, number>;
  bytes: number;
  stripesTotal: number;
  stripesDone: number;
  inProgress: { idx: number; owner: number; stripeStart: number; stripeEnd: number; bytes: number; checkpoint: unknown }[];
}

export const DEFAULT_MAX_ATTEMPTS = 3;

export class TaskStore {
  private readonly events: EventLog;
  private readonly s: Record<string, Statement>;

  constructor(private readonly db: Database, private readonly who: Actor = { actor: 'cli' }) {
    this.events = new EventLog(db);
    this.s = {
      // An initiator that is not live (it stopped while its request was queued) leaves the task
      // to the next live controller: NULL, as a stopped controller's tasks are.
      insert: db.prepare(`INSERT INTO tasks (kind, array_name, dataset, initiator, state, max_attempts, partitions_total,
        created_at, updated_at) VALUES (?, ?, ?, (SELECT id FROM controllers WHERE id = ? AND state = 'live'), 'RUNNING', ?, ?, ?, ?)`),
      insertPart: db.prepare(`INSERT INTO partitions (task_id, idx, stripe_start, stripe_end, instructions, state, updated_at)
        VALUES (?, ?, ?, ?, ?, 'READY', ?)`),
      get: db.prepare('SELECT * FROM tasks WHERE id = ?'),
      list: db.prepare('SELECT * FROM tasks WHERE (@array IS NULL OR array_name = @array) ORDER BY id'),
      active: db.prepare(`SELECT * FROM tasks WHERE state IN ('RUNNING', 'PAUSED', 'COMPLETING') AND (@array IS NULL OR array_name = @array) ORDER BY id`),
      parts: db.prepare('SELECT * FROM partitions WHERE task_id = ? ORDER BY idx'),
      part: db.prepare('SELECT * FROM partitions WHERE task_id = ? AND idx = ?'),
      counts: db.prepare(`SELECT state, COUNT(*) AS n, SUM(bytes) AS bytes, SUM(stripe_end - stripe_start) AS stripes
        FROM partitions WHERE task_id = ? GROUP BY state`),
      inProgress: db.prepare(`SELECT * FROM partitions WHERE task_id = ? AND state = 'IN_PROGRESS' ORDER BY idx`),
      setState: db.prepare(`UPDATE tasks SET state = @to, reason = COALESCE(@reason, reason), updated_at = @now,
        finished_at = CASE WHEN @to IN ('DONE', 'FAILED', 'CANCELLED') THEN @now ELSE finished_at END
        WHERE id = @id AND state = @from`),
    };
  }

  /** Writes the task and all its partitions (READY) in one transaction. */
  create(t: NewTask): TaskRecord {
    validate(t);
    return this.db.transaction(() => {
      const now = Date.now();
      const id = Number(this.s.insert.run(t.kind, t.arrayName ?? null, JSON.stringify(t.dataset ?? null), t.initiator,
        t.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, t.partitions.length, now, now).lastInsertRowid);
      t.partitions.forEach((p, idx) => this.s.insertPart.run(id, idx, p.stripeStart, p.stripeEnd, json(p.instructions ?? null), now));
      this.events.append({ ...this.who, kind: 'task.created', arrayName: t.arrayName, taskId: id,
        detail: { kind: t.kind, partitions: t.partitions.length, initiator: t.initiator } });
      return this.require(id);
    }).immediate();
  }

  /**
   * Creates the task unless one of the same kind on the same array is still active (running,
   * paused or completing), in one transaction: of several controllers starting the same duty at
   * once, one creates it. Returns the new task, or undefined when one was active.
   */
  createUnlessActive(t: NewTask): TaskRecord | undefined {
    return this.db.transaction(() => {
      const active = this.list({ arrayName: t.arrayName ?? undefined, activeOnly: true }).some((x) => x.kind === t.kind);
      return active ? undefined : this.create(t);
    }).immediate();
  }

  get(id: number): TaskRecord | undefined {
    const row = this.s.get.get(id) as TaskRow | undefined;
    return row ? toTask(row) : undefined;
  }

  require(id: number): TaskRecord {
    const t = this.get(id);
    if (!t) throw new NbdraidError('ENOENT', `task ${id}`, `no such task; list tasks with 'nbdraid tasks'`);
    return t;
  }

  /** All tasks (or only those not yet finished), oldest first. */
  list(opts: { arrayName?: string; activeOnly?: boolean } = {}): TaskRecord[] {
    const stmt = opts.activeOnly ? this.s.active : this.s.list;
    return (stmt.all({ array: opts.arrayName ?? null }) as TaskRow[]).map(toTask);
  }

  partitions(taskId: number): PartitionRecord[] {
    return (this.s.parts.all(taskId) as PartitionRow[]).map(toPartition);
  }

  partition(taskId: number, idx: number): PartitionRecord | undefined {
    const row = this.s.part.get(taskId, idx) as PartitionRow | undefined;
    return row ? toPartition(row) : undefined;
  }

  progress(taskId: number): TaskProgress {
    const task = this.require(taskId);
    const counts: Record<PartitionState, number> = { READY: 0, IN_PROGRESS: 0, COMPLETE: 0, FAILED: 0 };
    let bytes = 0, stripesTotal = 0, stripesDone = 0;
    for (const r of this.s.counts.all(taskId) as { state: PartitionState; n: number; bytes: number; stripes: number }[]) {
      counts[r.state] = r.n;
      bytes += r.bytes;
      stripesTotal += r.stripes;
      if (r.state === 'COMPLETE') stripesDone += r.stripes;
    }
    const inProgress = (this.s.inProgress.all(taskId) as PartitionRow[]).map(toPartition).map((p) => ({
      idx: p.idx, owner: p.owner as number, stripeStart: p.stripeStart, stripeEnd: p.stripeEnd, bytes: p.bytes, checkpoint: p.checkpoint,
    }));
    return { task, counts, bytes, stripesTotal, stripesDone, inProgress };
  }

  /** RUNNING -> PAUSED: no new claims; owners stop at their next checkpoint and release. */
  pause(id: number): TaskRecord {
    return this.transition(id, ['RUNNING'], 'PAUSED', 'task.paused');
  }

  /** PAUSED -> RUNNING. */
  resume(id: number): TaskRecord {
    return this.transition(id, ['PAUSED'], 'RUNNING', 'task.resumed');
  }

  /** RUNNING or PAUSED -> CANCELLED: terminal; owners' further checkpoints and completions are refused. */
  cancel(id: number, reason = 'cancelled by the operator'): TaskRecord {
    return this.transition(id, ['RUNNING', 'PAUSED'], 'CANCELLED', 'task.cancelled', reason);
  }

  private transition(id: number, from: TaskState[], to: TaskState, kind: string, reason?: string): TaskRecord {
    return this.db.transaction(() => {
      const t = this.require(id);
      if (!from.includes(t.state)) {
        throw new NbdraidError('EINVAL', `task ${id}`, `is ${t.state}; only a ${from.join(' or ')} task can be ${kind.split('.')[1]} (see 'nbdraid tasks')`);
      }
      this.s.setState.run({ id, from: t.state, to, reason: reason ?? null, now: Date.now() });
      this.events.append({ ...this.who, kind, arrayName: t.arrayName, taskId: id, detail: { from: t.state, to, reason } });
      return this.require(id);
    }).immediate();
  }
}

export function validate(t: NewTask): void {
  const ctx = `task ${t.kind}`;
  if (!t.kind) throw new NbdraidError('EINVAL', 'task', 'a task needs a kind');
  if (t.partitions.length === 0) throw new NbdraidError('EINVAL', ctx, 'a task needs at least one partition');
  if (t.maxAttempts !== undefined && !(Number.isInteger(t.maxAttempts) && t.maxAttempts >= 1)) {
    throw new NbdraidError('EINVAL', ctx, `maxAttempts must be a positive integer, got ${t.maxAttempts}`);
  }
  for (const [i, p] of t.partitions.entries()) {
    if (!Number.isSafeInteger(p.stripeStart) || !Number.isSafeInteger(p.stripeEnd) || p.stripeStart < 0 || p.stripeEnd < p.stripeStart) {
      throw new NbdraidError('EINVAL', ctx, `partition ${i}: bad stripe range [${p.stripeStart}, ${p.stripeEnd})`);
    }
  }
}
