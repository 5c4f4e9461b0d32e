// The semaphore of the coordination object: a partition moves READY -> IN_PROGRESS only by an
// atomic claim (one BEGIN IMMEDIATE transaction), IN_PROGRESS -> COMPLETE only by its owner.
// IN_PROGRESS -> READY happens when the owner is dead (controllers.ts), fails an attempt, or
// releases it itself (pause, shutdown) - never taken from a live owner by someone else.
import type { Database, Statement } from 'better-sqlite3';
import { NbdraidError } from '../errors.js';
import { lowestIndex, type ClaimContext, type ClaimPolicy } from './claim-policy.js';
import { EventLog } from './events.js';
import {
  json, toPartition, toTask, type PartitionRecord, type PartitionRow, type PartitionState, type TaskRecord, type TaskRow,
  type TaskState,
} from './records.js';

export interface ClaimFilter { taskId?: number; kinds?: string[]; arrayName?: string }
export interface Claimed { task: TaskRecord; partition: PartitionRecord }
export interface PartitionRef { taskId: number; idx: number }

/** READY partitions are read one first (the default policy needs no more), then in pages. */
const PAGE = 16;

export class PartitionWork {
  private readonly events: EventLog;
  private readonly policies = new Map<string, ClaimPolicy>();
  private readonly s: Record<string, Statement>;

  /** `controller` is the id of the live controller working through this object. */
  constructor(private readonly db: Database, private readonly controller: number) {
    this.events = new EventLog(db);
    this.s = {
      me: db.prepare('SELECT state FROM controllers WHERE id = ?'),
      running: db.prepare(`SELECT * FROM tasks WHERE state = 'RUNNING' AND partitions_done < partitions_total ORDER BY id`),
      task: db.prepare('SELECT * FROM tasks WHERE id = ?'),
      readyFirst: db.prepare(`SELECT * FROM partitions INDEXED BY partitions_state WHERE task_id = ? AND state = 'READY' ORDER BY idx LIMIT 1`),
      readyPage: db.prepare(`SELECT * FROM partitions INDEXED BY partitions_state WHERE task_id = ? AND state = 'READY' AND idx > ? ORDER BY idx LIMIT ${PAGE}`),
      stateOf: db.prepare('SELECT state FROM partitions WHERE task_id = ? AND idx = ?'),
      part: db.prepare('SELECT * FROM partitions WHERE task_id = ? AND idx = ?'),
      claim: db.prepare(`UPDATE partitions SET state = 'IN_PROGRESS', owner = ?, claimed_at = ?, updated_at = ?
        WHERE task_id = ? AND idx = ? AND state = 'READY'`),
      checkpoint: db.prepare(`UPDATE partitions SET checkpoint = ?, bytes = bytes + ?, updated_at = ? WHERE task_id = ? AND idx = ?`),
      complete: db.prepare(`UPDATE partitions SET state = 'COMPLETE', owner = NULL, bytes = bytes + ?, updated_at = ?, completed_at = ?
        WHERE task_id = ? AND idx = ?`),
      done: db.prepare('UPDATE tasks SET partitions_done = partitions_done + 1, updated_at = ? WHERE id = ?'),
      toReady: db.prepare(`UPDATE partitions SET state = 'READY', owner = NULL, attempts = attempts + ?, error = COALESCE(?, error),
        updated_at = ? WHERE task_id = ? AND idx = ?`),
      toFailed: db.prepare(`UPDATE partitions SET state = 'FAILED', owner = NULL, attempts = attempts + 1, error = ?, updated_at = ?
        WHERE task_id = ? AND idx = ?`),
      failTask: db.prepare(`UPDATE tasks SET state = 'FAILED', reason = ?, updated_at = ?, finished_at = ?
        WHERE id = ? AND state IN ('RUNNING', 'PAUSED')`),
    };
  }

  /** Registers the claim policy for a task kind (lowest index when none). */
  setPolicy(kind: string, policy: ClaimPolicy): void {
    this.policies.set(kind, policy);
  }

  /** Whether any kind has a policy of its own (policies are code: they exist only where set). */
  hasPolicies(): boolean {
    return this.policies.size > 0;
  }

  /** Claims one READY partition of a RUNNING task (oldest task first), or undefined when none is free. */
  claim(filter: ClaimFilter = {}): Claimed | undefined {
    return this.db.transaction(() => {
      this.requireLive();
      for (const row of this.s.running.all() as TaskRow[]) {
        if (!matches(row, filter)) continue;
        const task = toTask(row);
        const chosen = (this.policies.get(task.kind) ?? lowestIndex)(this.context(task));
        if (chosen) return this.take(task, chosen.idx);
      }
      return undefined;
    }).immediate();
  }

  /** Claims one named partition; refused unless it is READY and its task RUNNING. */
  claimIndex(taskId: number, idx: number): Claimed {
    return this.db.transaction(() => {
      this.requireLive();
      const task = this.task(taskId);
      if (task.state !== 'RUNNING') throw new NbdraidError('EBUSY', `task ${taskId}`, `is ${task.state}; partitions are claimed only while it runs`);
      const p = this.part(taskId, idx);
      if (p.state !== 'READY') {
        throw new NbdraidError('EBUSY', `task ${taskId} partition ${idx}`, `is ${p.state}${p.owner === null ? '' : ` (controller ${p.owner})`}, not READY`);
      }
      return this.take(task, idx);
    }).immediate();
  }

  /**
   * Records progress inside a claimed partition. Returns the task's state: on PAUSED the owner
   * should stop and release(); a CANCELLED or FAILED task is refused with ECANCELED.
   */
  checkpoint(ref: PartitionRef, checkpoint: unknown, bytesDelta = 0): TaskState {
    return this.db.transaction(() => {
      const task = this.owned(ref, 'checkpoint');
      this.s.checkpoint.run(json(checkpoint), bytesDelta, Date.now(), ref.taskId, ref.idx);
      return task.state;
    }).immediate();
  }

  /** IN_PROGRESS -> COMPLETE by the owner; true when it was the task's last partition. */
  complete(ref: PartitionRef, bytesDelta = 0): boolean {
    return this.db.transaction(() => {
      const task = this.owned(ref, 'complete');
      const now = Date.now();
      this.s.complete.run(bytesDelta, now, now, ref.taskId, ref.idx);
      this.s.done.run(now, ref.taskId);
      this.event('partition.completed', task, ref.idx);
      const last = task.partitionsDone + 1 === task.partitionsTotal;
      if (last) this.event('task.partitions-complete', task);
      return last;
    }).immediate();
  }

  /**
   * The owner reports a failed attempt: back to READY (checkpoint kept) for another try, or,
   * after the task's maxAttempts, the partition FAILED and the task FAILED with the reason.
   */
  fail(ref: PartitionRef, reason: string): PartitionState {
    return this.db.transaction(() => {
      const task = this.owned(ref, 'fail');
      const p = this.part(ref.taskId, ref.idx);
      const now = Date.now();
      if (p.attempts + 1 < task.maxAttempts) {
        this.s.toReady.run(1, reason, now, ref.taskId, ref.idx);
        this.event('partition.attempt-failed', task, ref.idx, { attempt: p.attempts + 1, reason });
        return 'READY';
      }
      this.s.toFailed.run(reason, now, ref.taskId, ref.idx);
      const why = `partition ${ref.idx} failed ${p.attempts + 1} times: ${reason}`;
      this.s.failTask.run(why, now, now, ref.taskId);
      this.event('partition.failed', task, ref.idx, { reason });
      this.event('task.failed', task, undefined, { reason: why });
      return 'FAILED';
    }).immediate();
  }

  /** The owner gives the partition back unfinished (pause, shutdown): READY with its checkpoint. */
  release(ref: PartitionRef): void {
    this.db.transaction(() => {
      const task = this.owned(ref, 'release', true);
      this.s.toReady.run(0, null, Date.now(), ref.taskId, ref.idx);
      this.event('partition.released', task, ref.idx, { why: 'owner' });
    }).immediate();
  }

  private take(task: TaskRecord, idx: number): Claimed {
    const now = Date.now();
    if (this.s.claim.run(this.controller, now, now, task.id, idx).changes !== 1) {
      throw new NbdraidError('EBUSY', `task ${task.id} partition ${idx}`, 'is no longer READY');
    }
    this.event('partition.claimed', task, idx);
    return { task, partition: this.part(task.id, idx) };
  }

  /** The refusals shared by checkpoint, complete, fail and release. */
  private owned(ref: PartitionRef, what: string, allowEnded = false): TaskRecord {
    this.requireLive();
    const task = this.task(ref.taskId);
    const p = this.part(ref.taskId, ref.idx);
    const ctx = `task ${ref.taskId} partition ${ref.idx}`;
    if (p.state !== 'IN_PROGRESS') throw new NbdraidError('ESTALE', ctx, `is ${p.state}, not IN_PROGRESS; cannot ${what}`);
    if (p.owner !== this.controller) {
      throw new NbdraidError('EPERM', ctx, `is owned by controller ${p.owner}, not ${this.controller}; cannot ${what}`);
    }
    if (!allowEnded && (task.state === 'CANCELLED' || task.state === 'FAILED')) {
      throw new NbdraidError('ECANCELED', ctx, `task is ${task.state}${task.reason ? ` (${task.reason})` : ''}; release the partition`);
    }
    return task;
  }

  private requireLive(): void {
    const me = this.s.me.get(this.controller) as { state: string } | undefined;
    if (me?.state !== 'live') {
      throw new NbdraidError('ESTALE', `controller ${this.controller}`, `is ${me?.state ?? 'unknown'}; register again before working`);
    }
  }

  private task(id: number): TaskRecord {
    const row = this.s.task.get(id) as TaskRow | undefined;
    if (!row) throw new NbdraidError('ENOENT', `task ${id}`, `no such task; list tasks with 'nbdraid tasks'`);
    return toTask(row);
  }

  private part(taskId: number, idx: number): PartitionRecord {
    const row = this.s.part.get(taskId, idx) as PartitionRow | undefined;
    if (!row) throw new NbdraidError('ENOENT', `task ${taskId} partition ${idx}`, 'no such partition');
    return toPartition(row);
  }

  private context(task: TaskRecord): ClaimContext {
    const { readyFirst, readyPage, stateOf } = this.s;
    return {
      task,
      *ready() {
        const first = readyFirst.get(task.id) as PartitionRow | undefined;
        if (!first) return;
        yield toPartition(first);
        for (let after = first.idx; ;) {
          const rows = readyPage.all(task.id, after) as PartitionRow[];
          for (const r of rows) yield toPartition(r);
          if (rows.length < PAGE) return;
          after = rows[rows.length - 1].idx;
        }
      },
      stateOf: (idx) => (stateOf.get(task.id, idx) as { state: PartitionState } | undefined)?.state,
    };
  }

  private event(kind: string, task: TaskRecord, idx?: number, detail?: unknown): void {
    this.events.append({ controller: this.controller, kind, arrayName: task.arrayName, taskId: task.id, partitionIdx: idx, detail });
  }
}

function matches(t: TaskRow, f: ClaimFilter): boolean {
  return (f.taskId === undefined || t.id === f.taskId) && (f.kinds === undefined || f.kinds.includes(t.kind))
    && (f.arrayName === undefined || t.array_name === f.arrayName);
}
