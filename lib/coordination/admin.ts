// The coordination object as the CLI verbs see it, on either backend: arrays, tasks, controllers
// and the events journal, every call async. SQLite wraps the synchronous stores on the state
// directory's database; PostgreSQL (pg/admin.ts) runs the same transitions on a pool.
import { type ArrayRecord, ArrayRegistry, type NewArray, type WrittenSuperblocks } from './arrays.js';
import { type ControllerRecord, ControllerRegistry } from './controllers.js';
import { openDatabase } from './db.js';
import { EventLog, type EventQuery, type EventRecord } from './events.js';
import { LeaseStore } from './leases.js';
import type { PartitionRecord, TaskRecord } from './records.js';
import type { CoordinationTarget } from './target.js';
import { type NewTask, type TaskProgress, TaskStore } from './tasks.js';

export type ShownController = ControllerRecord & { alive: boolean };
export interface SuperblockSnapshot { rec: ArrayRecord; written: WrittenSuperblocks | undefined; unsynced: number }

export interface AdminStore {
  readonly target: CoordinationTarget;
  getArray(name: string): Promise<ArrayRecord | undefined>;
  requireArray(name: string): Promise<ArrayRecord>;
  listArrays(): Promise<ArrayRecord[]>;
  createArray(rec: NewArray): Promise<ArrayRecord>;
  /** Read, mutate, write back in one transaction; the revision is bumped. */
  updateArray(name: string, mutate: (rec: ArrayRecord) => void): Promise<ArrayRecord>;
  removeArray(name: string): Promise<void>;
  written(name: string): Promise<WrittenSuperblocks | undefined>;
  recordWritten(name: string, events: number, state: unknown): Promise<void>;
  revision(name: string): Promise<number | undefined>;
  superblockSnapshot(name: string): Promise<SuperblockSnapshot>;
  requireResync(array: string, regions: number[]): Promise<void>;
  createTask(t: NewTask): Promise<TaskRecord>;
  getTask(id: number): Promise<TaskRecord | undefined>;
  requireTask(id: number): Promise<TaskRecord>;
  listTasks(opts?: { arrayName?: string; activeOnly?: boolean }): Promise<TaskRecord[]>;
  partitions(taskId: number): Promise<PartitionRecord[]>;
  progress(taskId: number): Promise<TaskProgress>;
  pauseTask(id: number): Promise<TaskRecord>;
  resumeTask(id: number): Promise<TaskRecord>;
  cancelTask(id: number, reason?: string): Promise<TaskRecord>;
  listControllers(): Promise<ShownController[]>;
  listEvents(q: EventQuery): Promise<EventRecord[]>;
  /**
   * The superblock writers' lock across hosts, when the backend has one (PostgreSQL); absent, a
   * flock in the state directory orders the writers of one host.
   */
  readonly lockSuperblocks?: (arrayName: string) => Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Opens the coordination object of `target` for the CLI (actor 'cli'). */
export async function openAdminStore(target: CoordinationTarget): Promise<AdminStore> {
  if (target.kind === 'postgres') {
    const { openPgAdminStore } = await import('./pg/admin.js');
    return openPgAdminStore(target);
  }
  return sqliteAdminStore(target);
}

function sqliteAdminStore(target: CoordinationTarget & { kind: 'sqlite' }): AdminStore {
  const db = openDatabase(target.stateDir);
  const who = { actor: 'cli' };
  const arrays = new ArrayRegistry(db, who);
  const tasks = new TaskStore(db, who);
  const ctls = new ControllerRegistry(db, target.stateDir);
  const events = new EventLog(db);
  const a = <T>(f: () => T): Promise<T> => {
    try {
      return Promise.resolve(f());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  };
  return {
    target,
    getArray: (n) => a(() => arrays.get(n)),
    requireArray: (n) => a(() => arrays.require(n)),
    listArrays: () => a(() => arrays.list()),
    createArray: (r) => a(() => arrays.create(r)),
    updateArray: (n, m) => a(() => arrays.update(n, m)),
    removeArray: (n) => a(() => arrays.remove(n)),
    written: (n) => a(() => arrays.written(n)),
    recordWritten: (n, e, s) => a(() => arrays.recordWritten(n, e, s)),
    revision: (n) => a(() => arrays.revision(n)),
    superblockSnapshot: (n) => a(() => arrays.superblockSnapshot(n)),
    requireResync: (n, regions) => a(() => new LeaseStore(db, null, n).requireResync(regions)),
    createTask: (t) => a(() => tasks.create(t)),
    getTask: (id) => a(() => tasks.get(id)),
    requireTask: (id) => a(() => tasks.require(id)),
    listTasks: (o) => a(() => tasks.list(o)),
    partitions: (id) => a(() => tasks.partitions(id)),
    progress: (id) => a(() => tasks.progress(id)),
    pauseTask: (id) => a(() => tasks.pause(id)),
    resumeTask: (id) => a(() => tasks.resume(id)),
    cancelTask: (id, r) => a(() => tasks.cancel(id, r)),
    listControllers: () => a(() => ctls.list().map((c) => ({ ...c, alive: c.state === 'live' && ctls.isAlive(c.id) }))),
    listEvents: (q) => a(() => events.list(q)),
    close: () => a(() => { db.close(); }),
  };
}
