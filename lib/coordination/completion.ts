// The completion action of a task runs once: the task moves RUNNING -> COMPLETING in one
// transaction guarded by (state RUNNING, every partition COMPLETE, initiator = us), so only the
// initiator can start it and only once; COMPLETING -> DONE is guarded the same way. If the
// initiator dies inside the action, the reaper puts the task back to RUNNING under a live
// controller, which runs the action again: actions must therefore be idempotent.
//
// CompletionRows are those transitions on SQLite (a controller runs them on its coordination
// thread); CompletionRunner runs the actions over any CompletionStore.
import type { Database, Statement } from 'better-sqlite3';
import { EventLog } from './events.js';
import { json, toTask, type TaskRecord, type TaskRow } from './records.js';

export type CompletionAction = (task: TaskRecord) => unknown | Promise<unknown>;

/** The task transitions around a completion action, for one controller. */
export interface CompletionStore {
  /** Adopts tasks that have no initiator, then lists ours whose partitions are all COMPLETE. */
  ready(): Promise<TaskRecord[]> | TaskRecord[];
  /** RUNNING -> COMPLETING; false when another got there first or the task moved on. */
  begin(task: TaskRecord): Promise<boolean> | boolean;
  /** COMPLETING -> DONE with the result, or FAILED with the reason. */
  finish(task: TaskRecord, result: unknown, failure: string | null): Promise<void> | void;
}

export class CompletionRows implements CompletionStore {
  private readonly events: EventLog;
  private readonly s: Record<string, Statement>;

  constructor(private readonly db: Database, private readonly controller: number) {
    this.events = new EventLog(db);
    this.s = {
      orphans: db.prepare(`SELECT id FROM tasks WHERE initiator IS NULL AND state IN ('RUNNING', 'PAUSED', 'COMPLETING')`),
      // Only a live controller adopts: a check answered after its controller stopped adopts nothing.
      adopt: db.prepare(`UPDATE tasks SET initiator = @me, state = CASE state WHEN 'COMPLETING' THEN 'RUNNING' ELSE state END,
        updated_at = @now WHERE id = @id AND initiator IS NULL
        AND EXISTS (SELECT 1 FROM controllers WHERE id = @me AND state = 'live')`),
      ready: db.prepare(`SELECT * FROM tasks WHERE initiator = ? AND state = 'RUNNING' AND partitions_done = partitions_total`),
      begin: db.prepare(`UPDATE tasks SET state = 'COMPLETING', updated_at = ?
        WHERE id = ? AND state = 'RUNNING' AND initiator = ? AND partitions_done = partitions_total`),
      end: db.prepare(`UPDATE tasks SET state = @state, result = @result, reason = @reason, updated_at = @now, finished_at = @now
        WHERE id = @id AND state = 'COMPLETING' AND initiator = @me`),
    };
  }

  ready(): TaskRecord[] {
    this.adoptOrphans();
    return (this.s.ready.all(this.controller) as TaskRow[]).map(toTask);
  }

  begin(task: TaskRecord): boolean {
    return this.db.transaction(() => {
      if (this.s.begin.run(Date.now(), task.id, this.controller).changes !== 1) return false;
      this.events.append({ controller: this.controller, kind: 'task.completing', arrayName: task.arrayName, taskId: task.id });
      return true;
    }).immediate();
  }

  finish(task: TaskRecord, result: unknown, failure: string | null): void {
    this.db.transaction(() => {
      const state = failure === null ? 'DONE' : 'FAILED';
      const changed = this.s.end.run({ id: task.id, me: this.controller, state, result: json(result), reason: failure, now: Date.now() }).changes;
      if (changed !== 1) return;
      this.events.append({ controller: this.controller, kind: failure === null ? 'task.done' : 'task.failed', arrayName: task.arrayName,
        taskId: task.id, detail: failure === null ? { result } : { reason: failure } });
    }).immediate();
  }

  private adoptOrphans(): void {
    if ((this.s.orphans.all() as unknown[]).length === 0) return;
    this.db.transaction(() => {
      for (const { id } of this.s.orphans.all() as { id: number }[]) {
        if (this.s.adopt.run({ me: this.controller, now: Date.now(), id }).changes === 1) {
          this.events.append({ controller: this.controller, kind: 'task.adopted', taskId: id, detail: { from: null, to: this.controller } });
        }
      }
    }).immediate();
  }
}

export class CompletionRunner {
  private readonly actions = new Map<string, CompletionAction>();
  private readonly running = new Set<number>();

  constructor(private readonly store: CompletionStore) {}

  /** Registers the completion action of a task kind. */
  on(kind: string, action: CompletionAction): void {
    this.actions.set(kind, action);
  }

  /**
   * Adopts tasks without an initiator, then runs the completion of every task of ours whose
   * partitions are all COMPLETE. Cheap when there is nothing to do; call it on every change.
   */
  async check(): Promise<void> {
    const ready = await this.store.ready();
    await Promise.all(ready.filter((t) => this.actions.has(t.kind) && !this.running.has(t.id)).map((t) => this.complete(t)));
  }

  private async complete(task: TaskRecord): Promise<void> {
    this.running.add(task.id);
    try {
      if (!(await this.store.begin(task))) return;
      let result: unknown, failure: string | null = null;
      try {
        result = await (this.actions.get(task.kind) as CompletionAction)(task);
      } catch (err) {
        failure = `completion action failed: ${(err as Error).message}`;
      }
      await this.store.finish(task, result, failure);
    } finally {
      this.running.delete(task.id);
    }
  }
}
