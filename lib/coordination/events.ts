// The events table: an append-only journal of every transition, who made it and when.
import type { Database, Statement } from 'better-sqlite3';

export interface EventRecord {
  id: number;
  at: number;
  controller: number | null;
  actor: string;
  kind: string;
  arrayName: string | null;
  taskId: number | null;
  partitionIdx: number | null;
  detail: unknown;
}

export interface NewEvent {
  controller?: number | null;
  /** Who acted when not a controller ('cli'); defaults to 'controller N'. */
  actor?: string;
  kind: string;
  arrayName?: string | null;
  taskId?: number | null;
  partitionIdx?: number | null;
  detail?: unknown;
}

export interface EventQuery { limit?: number; sinceId?: number; taskId?: number; arrayName?: string; kindPrefix?: string }

export interface EventRow {
  id: number; at: number; controller: number | null; actor: string; kind: string;
  array_name: string | null; task_id: number | null; partition_idx: number | null; detail: string | null;
}

export class EventLog {
  private readonly insert: Statement;
  private readonly select: Statement;
  private readonly pruneStmt: Statement;

  constructor(db: Database) {
    this.insert = db.prepare(`INSERT INTO events (at, controller, actor, kind, array_name, task_id, partition_idx, detail)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    this.select = db.prepare(`SELECT * FROM events
      WHERE id > @sinceId AND (@taskId IS NULL OR task_id = @taskId) AND (@arrayName IS NULL OR array_name = @arrayName)
        AND (@kindPrefix IS NULL OR substr(kind, 1, length(@kindPrefix)) = @kindPrefix)
      ORDER BY id DESC LIMIT @limit`);
    this.pruneStmt = db.prepare('DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?');
  }

  /** Appends one event; call inside the transaction of the change it records. */
  append(e: NewEvent): void {
    const controller = e.controller ?? null;
    const actor = e.actor ?? (controller === null ? 'unknown' : `controller ${controller}`);
    this.insert.run(Date.now(), controller, actor, e.kind, e.arrayName ?? null, e.taskId ?? null, e.partitionIdx ?? null,
      e.detail === undefined ? null : JSON.stringify(e.detail));
  }

  /** The newest events matching `q`, returned oldest first. */
  list(q: EventQuery = {}): EventRecord[] {
    const rows = this.select.all({
      sinceId: q.sinceId ?? 0, taskId: q.taskId ?? null, arrayName: q.arrayName ?? null,
      kindPrefix: q.kindPrefix ?? null, limit: q.limit ?? 100,
    }) as EventRow[];
    return rows.reverse().map(toEvent);
  }

  /** Keeps only the newest `keep` events (the journal is append-only, with bounded retention). */
  prune(keep: number): number {
    return this.pruneStmt.run(keep).changes;
  }
}

export function toEvent(r: EventRow): EventRecord {
  return {
    id: r.id, at: r.at, controller: r.controller, actor: r.actor, kind: r.kind, arrayName: r.array_name,
    taskId: r.task_id, partitionIdx: r.partition_idx, detail: r.detail === null ? null : JSON.parse(r.detail),
  };
}
