// One controller process's view of the coordination object: registration and liveness,
// heartbeat and reaping of dead peers, partition work, completion actions and region leases,
// all driven by one change source: the coordination thread's data_version poll. A controller's
// I/O thread calls only `async`, `thread.ops` and the lease cache; the synchronous registries
// here are for tools and tests on this thread's own connection.
import type { Database } from 'better-sqlite3';
import { Coalesced } from '../coalesced.js';
import { ArrayRegistry } from './arrays.js';
import type { ChangeSource } from './change-watcher.js';
import type { ClaimPolicy } from './claim-policy.js';
import { CompletionRunner, type CompletionAction } from './completion.js';
import { ControllerRegistry, type ControllerRecord } from './controllers.js';
import { openDatabase } from './db.js';
import { DbThread } from './db-thread.js';
import { EventLog } from './events.js';
import { LeaseCache, type LeaseCacheOptions } from './lease-cache.js';
import type { LeaseOps } from './lease-ops.js';
import { LeaseStore } from './leases.js';
import { PartitionWork, type ClaimFilter, type Claimed, type PartitionRef } from './partitions.js';
import { TERMINAL_TASK_STATES, type PartitionState, type TaskRecord, type TaskState } from './records.js';
import { TaskStore, type NewTask } from './tasks.js';

export interface CoordinatorOptions {
  /** Where clients reach this controller (shown by `nbdraid controllers`). */
  address?: string;
  /** data_version polling period: bounds how soon others' changes are seen (ms). */
  tickMs?: number;
  /** Period of heartbeat and dead-peer reaping (ms). */
  reapMs?: number;
  /** Events kept when pruning the journal. */
  eventsKeep?: number;
  onError?: (err: Error) => void;
}

/**
 * Partition work through the coordination thread: every call that writes (and may wait for the
 * database's write lock) returns a promise. Claims there use the default policy (lowest READY
 * index); a kind with a policy of its own set by setPolicy() is claimed with the synchronous call.
 */
export interface AsyncWork {
  claim(filter?: ClaimFilter): Promise<Claimed | undefined>;
  checkpoint(ref: PartitionRef, checkpoint: unknown, bytesDelta?: number): Promise<TaskState>;
  complete(ref: PartitionRef, bytesDelta?: number): Promise<boolean>;
  fail(ref: PartitionRef, reason: string): Promise<PartitionState>;
  release(ref: PartitionRef): Promise<void>;
  clearResync(arrayName: string, regions: number[]): Promise<void>;
  /** Creates a task initiated by this controller (its completion action runs here). */
  createTask(t: Omit<NewTask, 'initiator'>): Promise<TaskRecord>;
  /** As createTask, unless a task of that kind on that array is active (then undefined). */
  createTaskUnlessActive(t: Omit<NewTask, 'initiator'>): Promise<TaskRecord | undefined>;
}

export class Coordinator {
  readonly controllers: ControllerRegistry;
  readonly arrays: ArrayRegistry;
  readonly tasks: TaskStore;
  readonly work: PartitionWork;
  readonly completions: CompletionRunner;
  readonly events: EventLog;
  readonly watcher: ChangeSource;
  readonly self: ControllerRecord;
  private readonly caches = new Map<string, LeaseCache>();
  private readonly timer: NodeJS.Timeout;
  private readonly stopWatching: () => void;
  private readonly onError: (err: Error) => void;
  /** Writes that may wait for the database (heartbeat, reaping, lease changes) run here. */
  readonly thread: DbThread;
  readonly async: AsyncWork;
  private beats = 0;
  private housekeepingBusy = false;
  private readonly completionRuns = new Coalesced(
    () => this.completions.check().catch((err: unknown) => { if (!this.closed) this.onError(err as Error); }),
    () => !this.closed,
  );
  private closed = false;

  private constructor(readonly db: Database, readonly stateDir: string, private readonly opts: CoordinatorOptions) {
    this.onError = opts.onError ?? ((err) => process.stderr.write(`nbdraid coordination: ${err.message}\n`));
    this.controllers = new ControllerRegistry(db, stateDir);
    this.self = this.controllers.register({ address: opts.address });
    this.thread = new DbThread(stateDir, this.self.id, { watchMs: opts.tickMs ?? 10 });
    this.async = this.asyncWork();
    const who = { controller: this.self.id };
    this.arrays = new ArrayRegistry(db, who);
    this.tasks = new TaskStore(db, who);
    this.work = new PartitionWork(db, this.self.id);
    const ops = this.thread.ops;
    this.completions = new CompletionRunner({ ready: () => ops.completionsReady(), begin: (t) => ops.completionBegin(t), finish: (t, r, f) => ops.completionFinish(t, r, f) });
    this.events = new EventLog(db);
    this.watcher = this.thread.changes;
    this.stopWatching = this.watcher.subscribe(() => this.checkCompletions());
    this.timer = setInterval(() => void this.housekeeping(), opts.reapMs ?? 250);
  }

  /** Opens the state directory's database and registers this process as a live controller. */
  static open(stateDir: string, opts: CoordinatorOptions = {}): Coordinator {
    return new Coordinator(openDatabase(stateDir), stateDir, opts);
  }

  get id(): number {
    return this.self.id;
  }

  /** Creates a task initiated by this controller; its completion action runs here. */
  createTask(t: Omit<NewTask, 'initiator'>): TaskRecord {
    const task = this.tasks.create({ ...t, initiator: this.id });
    this.watcher.notify();
    return task;
  }

  onCompletion(kind: string, action: CompletionAction): void {
    this.completions.on(kind, action);
  }

  setPolicy(kind: string, policy: ClaimPolicy): void {
    this.work.setPolicy(kind, policy);
  }

  claim(filter?: ClaimFilter): Claimed | undefined {
    return this.work.claim(filter);
  }

  checkpoint(ref: PartitionRef, checkpoint: unknown, bytesDelta = 0): TaskState {
    return this.work.checkpoint(ref, checkpoint, bytesDelta);
  }

  complete(ref: PartitionRef, bytesDelta = 0): boolean {
    const last = this.work.complete(ref, bytesDelta);
    if (last) this.checkCompletions();
    return last;
  }

  fail(ref: PartitionRef, reason: string): PartitionState {
    return this.work.fail(ref, reason);
  }

  release(ref: PartitionRef): void {
    this.work.release(ref);
  }

  /** The lease cache of one array (one per array and process). */
  leases(arrayName: string, opts?: LeaseCacheOptions): LeaseCache {
    let cache = this.caches.get(arrayName);
    if (!cache) {
      const ops = this.thread.ops;
      const leaseOps: LeaseOps = {
        take: (region) => ops.leaseTake(arrayName, region),
        giveBack: (region) => ops.leaseGiveBack(arrayName, region),
        poll: (waiting, probe) => ops.leasePoll(arrayName, waiting, probe),
        closeAll: (clean) => ops.leaseCloseAll(arrayName, clean),
        markDirty: (regions) => ops.markDirty(arrayName, regions),
        markClean: (regions) => ops.markClean(arrayName, regions),
      };
      cache = new LeaseCache(leaseOps, arrayName, this.watcher, opts);
      this.caches.set(arrayName, cache);
    }
    return cache;
  }

  /** Read and resync access to an array's leases (not the I/O path). */
  leaseStore(arrayName: string): LeaseStore {
    return new LeaseStore(this.db, this.id, arrayName);
  }

  /** Resolves at the next change made by another process (or ours), or after `timeoutMs`. */
  waitForChange(timeoutMs = 1000): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        stop();
        resolve();
      };
      const stop = this.watcher.subscribe(done);
      const t = setTimeout(done, timeoutMs);
    });
  }

  /** Resolves with the task once it is DONE, FAILED or CANCELLED. */
  async waitForTask(id: number): Promise<TaskRecord> {
    for (;;) {
      const t = this.tasks.require(id);
      if (TERMINAL_TASK_STATES.includes(t.state)) return t;
      await this.waitForChange();
    }
  }

  /** Ends this controller cleanly: leases given back, partitions returned READY, lock dropped. */
  close(): Promise<void> {
    if (this.closed) return this.thread.close();
    this.closed = true;
    clearInterval(this.timer);
    this.stopWatching();
    this.watcher.close();
    // The leases go back (a wanted one to its waiter, with its bit) before this controller is
    // recorded as stopped: stopping frees whatever it still holds and queues the dirty ones for
    // resync, which a clean hand-over needs not.
    // The thread answers every call already made before it closes; only then is this controller
    // recorded stopped. A call answered after the stop (a task created, a peer reaped) would act
    // for a controller that no longer lives, and its tasks would have no live initiator.
    const end = async (): Promise<void> => {
      await this.thread.close();
      this.controllers.stop(this.id);
      this.db.close();
    };
    if (this.caches.size === 0) return end(); // nothing to give back: stopped at once
    return Promise.allSettled([...this.caches.values()].map((c) => c.close())).then(end);
  }

  private asyncWork(): AsyncWork {
    const ops = this.thread.ops;
    return {
      claim: (filter = {}) => (this.work.hasPolicies() ? Promise.resolve(this.work.claim(filter)) : ops.claim(filter)),
      checkpoint: (ref, cp, bytes = 0) => ops.checkpoint(ref, cp, bytes),
      complete: async (ref, bytes = 0) => {
        const last = await ops.complete(ref, bytes);
        if (last) this.checkCompletions();
        return last;
      },
      fail: (ref, reason) => ops.fail(ref, reason),
      release: (ref) => ops.release(ref),
      clearResync: (arrayName, regions) => ops.clearResync(arrayName, regions),
      createTask: async (t) => {
        const task = await ops.createTask({ ...t, initiator: this.id });
        this.watcher.notify();
        return task;
      },
      createTaskUnlessActive: async (t) => {
        const task = await ops.createTaskUnlessActive({ ...t, initiator: this.id });
        if (task) this.watcher.notify();
        return task;
      },
    };
  }

  /** One check at a time; changes seen during one ask for exactly one more. */
  private checkCompletions(): void {
    if (!this.closed) void this.completionRuns.run();
  }

  /**
   * Heartbeat, reaping of dead peers and journal pruning, on the coordination thread: a busy
   * database delays them (a late heartbeat is not death), never the I/O this thread serves.
   */
  private async housekeeping(): Promise<void> {
    if (this.housekeepingBusy || this.closed) return;
    this.housekeepingBusy = true;
    try {
      const ops = this.thread.ops;
      await ops.heartbeat(this.id);
      if ((await ops.reapDead(this.id)).length > 0) this.checkCompletions();
      if (++this.beats % 200 === 0) await ops.pruneEvents(this.opts.eventsKeep ?? 100_000);
    } catch (err) {
      if (!this.closed) this.onError(err as Error);
    } finally {
      this.housekeepingBusy = false;
    }
  }
}
