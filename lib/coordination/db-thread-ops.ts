// The statements a controller runs off its I/O thread, by name: the worker thread (db-thread.ts)
// opens its own connection to the state directory's database and answers these. Every argument
// and result is plain data, so another backend can stand behind the same names.
import type { Database } from 'better-sqlite3';
import { type ArrayRecord, ArrayRegistry, type WrittenSuperblocks } from './arrays.js';
import { CompletionRows } from './completion.js';
import { ControllerRegistry, type ReapResult } from './controllers.js';
import { type EventQuery, type EventRecord, EventLog } from './events.js';
import { type LeasePoll, type LeaseSteps, leaseSteps } from './lease-ops.js';
import { type AcquireOutcome, LeaseStore } from './leases.js';
import { PartitionWork, type ClaimFilter, type Claimed, type PartitionRef } from './partitions.js';
import type { AssignedSpare, RecordedChange } from './member-change.js';
import type { PartitionRecord, PartitionState, TaskRecord, TaskState } from './records.js';
import { type NewTask, type TaskProgress, TaskStore } from './tasks.js';

/** Liveness, leases, write intent and partition work: the operations every backend answers. */
export interface WorkOps {
  heartbeat(id: number): void;
  reapDead(reaper: number): ReapResult[];
  pruneEvents(keep: number): void;
  leaseTake(array: string, region: number): AcquireOutcome;
  leaseGiveBack(array: string, region: number): void;
  leasePoll(array: string, waiting: number[], probe: boolean): LeasePoll;
  leaseCloseAll(array: string, clean: number[]): void;
  markDirty(array: string, regions: number[]): void;
  markClean(array: string, regions: number[]): void;
  clearResync(array: string, regions: number[]): void;
  claim(filter: ClaimFilter): Claimed | undefined;
  checkpoint(ref: PartitionRef, checkpoint: unknown, bytesDelta: number): TaskState;
  complete(ref: PartitionRef, bytesDelta: number): boolean;
  fail(ref: PartitionRef, reason: string): PartitionState;
  release(ref: PartitionRef): void;
}

/** The array's record, tasks and journal as a serving controller reads and changes them. */
export interface RecordOps {
  // The array's record and its superblock bookkeeping.
  arrayGet(array: string): ArrayRecord | undefined;
  superblockSnapshot(array: string): { rec: ArrayRecord; written: WrittenSuperblocks | undefined; unsynced: number };
  recordWritten(array: string, events: number, state: unknown): void;
  changeMember(array: string, change: RecordedChange): void;
  assignSpare(array: string, slot: number): AssignedSpare | undefined;
  pendingResync(array: string): number[];
  /** Regions whose write-intent bit is set, held or not. */
  dirtyRegions(array: string): number[];
  /** Live controllers (row live and lock held). */
  liveControllers(): number;
  // Tasks: creation, listing, and the transitions around completion actions.
  createTask(task: NewTask): TaskRecord;
  createTaskUnlessActive(task: NewTask): TaskRecord | undefined;
  tasks(array: string, activeOnly: boolean): TaskRecord[];
  partitions(taskId: number): PartitionRecord[];
  /** Progress of the array's active tasks (metrics). */
  activeProgress(array: string): TaskProgress[];
  /** The superblocks' last written events counter, if recorded. */
  writtenEvents(array: string): number | undefined;
  events(query: EventQuery): EventRecord[];
  completionsReady(): TaskRecord[];
  completionBegin(task: TaskRecord): boolean;
  completionFinish(task: TaskRecord, result: unknown, failure: string | null): void;
}

/** Everything the SQLite coordination thread answers. */
export interface DbOps extends WorkOps, RecordOps {}

export type DbOpName = keyof DbOps;

/** The operations of controller `controller` over connection `db`. */
export function dbOps(db: Database, stateDir: string, controller: number): DbOps {
  const controllers = new ControllerRegistry(db, stateDir);
  const events = new EventLog(db);
  const work = new PartitionWork(db, controller);
  const registry = new ArrayRegistry(db, { controller });
  const tasks = new TaskStore(db, { controller });
  const completions = new CompletionRows(db, controller);
  const arrays = new Map<string, { store: LeaseStore; steps: LeaseSteps }>();
  const of = (array: string) => {
    let a = arrays.get(array);
    if (!a) {
      const store = new LeaseStore(db, controller, array);
      arrays.set(array, (a = { store, steps: leaseSteps(store, controllers, controller) }));
    }
    return a;
  };
  const leases = (array: string): LeaseSteps => of(array).steps;
  return {
    heartbeat: (id) => controllers.heartbeat(id),
    reapDead: (reaper) => controllers.reapDead(reaper),
    pruneEvents: (keep) => { events.prune(keep); },
    leaseTake: (array, region) => leases(array).take(region),
    leaseGiveBack: (array, region) => leases(array).giveBack(region),
    leasePoll: (array, waiting, probe) => leases(array).poll(waiting, probe),
    leaseCloseAll: (array, clean) => leases(array).closeAll(clean),
    markDirty: (array, regions) => leases(array).markDirty(regions),
    markClean: (array, regions) => leases(array).markClean(regions),
    clearResync: (array, regions) => of(array).store.clearResync(regions),
    claim: (filter) => work.claim(filter),
    checkpoint: (ref, checkpoint, bytesDelta) => work.checkpoint(ref, checkpoint, bytesDelta),
    complete: (ref, bytesDelta) => work.complete(ref, bytesDelta),
    fail: (ref, reason) => work.fail(ref, reason),
    release: (ref) => work.release(ref),
    arrayGet: (array) => registry.get(array),
    superblockSnapshot: (array) => registry.superblockSnapshot(array),
    recordWritten: (array, events, state) => registry.recordWritten(array, events, state),
    changeMember: (array, change) => registry.changeMember(array, change),
    assignSpare: (array, slot) => registry.assignSpare(array, slot),
    pendingResync: (array) => of(array).store.pendingResync().map((r) => r.region),
    dirtyRegions: (array) => of(array).store.list().filter((l) => l.dirty).map((l) => l.region),
    liveControllers: () => controllers.list().filter((c) => c.state === 'live' && controllers.isAlive(c.id)).length,
    createTask: (task) => tasks.create(task),
    createTaskUnlessActive: (task) => tasks.createUnlessActive(task),
    tasks: (array, activeOnly) => tasks.list({ arrayName: array, activeOnly }),
    partitions: (taskId) => tasks.partitions(taskId),
    activeProgress: (array) => tasks.list({ arrayName: array, activeOnly: true }).map((t) => tasks.progress(t.id)),
    writtenEvents: (array) => registry.written(array)?.events,
    events: (query) => events.list(query),
    completionsReady: () => completions.ready(),
    completionBegin: (task) => completions.begin(task),
    completionFinish: (task, result, failure) => completions.finish(task, result, failure),
  };
}
