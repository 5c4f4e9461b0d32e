// One controller process's view of the coordination object: registration and liveness,
// heartbeat and reaping of dead peers, partition work, completion actions and region leases,
// all driven by one change source. On SQLite (the default) that is the coordination thread and
// its data_version poll, liveness is a flock, and LocalCoordinator adds synchronous registries
// for tools and tests on this thread's own connection. On PostgreSQL it is a pool and LISTEN,
// and liveness is a heartbeat row bounded by T (life-bound.ts). A controller's I/O thread calls
// only `async`, `thread.ops` and the lease cache, whichever the backend.
import type { Database } from 'better-sqlite3';
import { Coalesced } from '../coalesced.js';
import { ArrayRegistry } from './arrays.js';
import type { ChangeSource } from './change-watcher.js';
import type { CoordinationChannel } from './channel.js';
import type { ClaimPolicy } from './claim-policy.js';
import { CompletionRunner, type CompletionAction } from './completion.js';
import { ControllerRegistry, type ControllerRecord } from './controllers.js';
import { openDatabase } from './db.js';
import { DbThread } from './db-thread.js';
import { EventLog } from './events.js';
import { LifeBound, type LifeState } from './life-bound.js';
import { persist } from './persist.js';
import { LeaseCache, type LeaseCacheOptions } from './lease-cache.js';
import type { LeaseOps } from './lease-ops.js';
import { LeaseStore } from './leases.js';
import { PartitionWork, type ClaimFilter, type Claimed, type PartitionRef } from './partitions.js';
import { TERMINAL_TASK_STATES, type PartitionState, type TaskRecord, type TaskState } from './records.js';
import { TaskStore, type NewTask } from './tasks.js';
import type { CoordinationTarget } from './target.js';

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
  /**
   * Told when this controller's life on the database changes (PostgreSQL only: on SQLite the
   * flock is its life and a live process cannot lose it).
   */
  onLife?: (state: LifeState, why: string) => void;
}

/** What a backend gives a Coordinator: its registered self, its channel, and how it ends. */
interface Backing {
  id: number;
  channel: CoordinationChannel;
  /** PostgreSQL's T: heartbeats then bound this controller's life (absent on SQLite). */
  deadAfterMs?: number;
  /** When the registration was sent (monotonic ms): the row's first stamp is later than that. */
  registeredFrom?: number;
  /** Records this controller stopped (its work goes back at once) and lets the database go. */
  end(): Promise<void>;
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
  readonly completions: CompletionRunner;
  readonly watcher: ChangeSource;
  private readonly caches = new Map<string, LeaseCache>();
  private readonly timer: NodeJS.Timeout;
  private readonly stopWatching: () => void;
  private readonly onError: (err: Error) => void;
  /** Every call a serving controller makes (the SQLite thread, or the PostgreSQL pool). */
  readonly thread: CoordinationChannel;
  readonly async: AsyncWork;
  /** This controller's life where the database cannot see its process (PostgreSQL). */
  readonly life: LifeBound | undefined;
  readonly id: number;
  private beats = 0;
  private beating = false;
  private reaping = false;
  private readonly completionRuns = new Coalesced(
    () => this.completions.check().catch((err: unknown) => { if (!this.closed) this.onError(err as Error); }),
    () => !this.closed,
  );
  private closed = false;
  private readonly end: () => Promise<void>;

  protected constructor(backing: Backing, protected readonly opts: CoordinatorOptions) {
    this.onError = opts.onError ?? ((err) => process.stderr.write(`nbdraid coordination: ${err.message}\n`));
    this.id = backing.id;
    this.thread = backing.channel;
    this.end = backing.end;
    this.async = this.asyncWork();
    const ops = this.thread.ops;
    this.completions = new CompletionRunner({ ready: () => ops.completionsReady(), begin: (t) => ops.completionBegin(t), finish: (t, r, f) => ops.completionFinish(t, r, f) });
    this.watcher = this.thread.changes;
    this.stopWatching = this.watcher.subscribe(() => this.checkCompletions());
    if (backing.deadAfterMs !== undefined) {
      this.life = new LifeBound({ deadAfterMs: backing.deadAfterMs, from: backing.registeredFrom, onChange: (state, why) => this.opts.onLife?.(state, why) });
    }
    this.timer = setInterval(() => this.housekeeping(), opts.reapMs ?? 250);
  }

  /** Opens the state directory's SQLite database and registers this process as a live controller. */
  static open(stateDir: string, opts: CoordinatorOptions = {}): LocalCoordinator {
    return new LocalCoordinator(openDatabase(stateDir), stateDir, opts);
  }

  /**
   * Registers this process as a live controller on `target`: the state directory's SQLite
   * database, or PostgreSQL (a heartbeat row whose life is bounded by T).
   */
  static async connect(target: CoordinationTarget, opts: CoordinatorOptions = {}): Promise<Coordinator> {
    if (target.kind === 'sqlite') return Coordinator.open(target.stateDir, opts);
    const { PgBackend } = await import('./pg/backend.js');
    const T = target.deadAfterMs;
    const backend = await PgBackend.open(target.uri, { deadAfterMs: T, poolSize: 6, timeoutMs: Math.ceil(T / 2) });
    try {
      // The life bound counts from the registration's send, not from when LISTEN got connected.
      const registeredFrom = performance.now();
      const self = await backend.register(opts.address ?? null);
      const channel = await backend.channel(self.id);
      return new Coordinator({
        id: self.id, channel, deadAfterMs: T, registeredFrom,
        end: async () => {
          await channel.close();
          await backend.stop(self.id).catch(() => undefined); // reaped already, or the server is away: T ends it
          await backend.close();
        },
      }, opts);
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  onCompletion(kind: string, action: CompletionAction): void {
    this.completions.on(kind, action);
  }

  /** The lease cache of one array (one per array and process). */
  leases(arrayName: string, opts?: LeaseCacheOptions): LeaseCache {
    let cache = this.caches.get(arrayName);
    if (!cache) {
      const ops = this.thread.ops;
      // A database that is away (restarting) is waited for while this controller may still live;
      // its member I/O is fenced meanwhile anyway once T/2 passes (life-bound.ts).
      const wait = <T>(call: () => Promise<T>) => persist(call, () => this.mayWait());
      const leaseOps: LeaseOps = {
        take: (region) => wait(() => ops.leaseTake(arrayName, region)),
        giveBack: (region) => wait(() => ops.leaseGiveBack(arrayName, region)),
        poll: (waiting, probe) => ops.leasePoll(arrayName, waiting, probe),
        closeAll: (clean) => ops.leaseCloseAll(arrayName, clean),
        markDirty: (regions) => wait(() => ops.markDirty(arrayName, regions)),
        markClean: (regions) => wait(() => ops.markClean(arrayName, regions)),
      };
      cache = new LeaseCache(leaseOps, arrayName, this.watcher, opts);
      this.caches.set(arrayName, cache);
    }
    return cache;
  }

  /** Whether a call that met a database away may be made again: not once closed or lost. */
  mayWait(): boolean {
    return !this.closed && this.life?.state !== 'lost';
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

  /** Ends this controller cleanly: leases given back, partitions returned READY, lock dropped. */
  close(): Promise<void> {
    if (this.closed) return this.thread.close();
    this.closed = true;
    clearInterval(this.timer);
    this.life?.stop();
    this.stopWatching();
    this.watcher.close();
    // The leases go back (a wanted one to its waiter, with its bit) before this controller is
    // recorded as stopped: stopping frees whatever it still holds and queues the dirty ones for
    // resync, which a clean hand-over needs not.
    // The channel answers every call already made before it closes; only then is this controller
    // recorded stopped. A call answered after the stop (a task created, a peer reaped) would act
    // for a controller that no longer lives, and its tasks would have no live initiator.
    if (this.caches.size === 0 || this.life?.state === 'lost') return this.end(); // nothing to give back, or no longer ours
    return Promise.allSettled([...this.caches.values()].map((c) => c.close())).then(() => this.end());
  }

  /** A claim under a kind's own policy, answered here (LocalCoordinator); undefined: the channel's default claim. */
  protected policyClaim(_filter: ClaimFilter): { claimed: Claimed | undefined } | undefined {
    return undefined;
  }

  private asyncWork(): AsyncWork {
    const ops = this.thread.ops;
    return {
      claim: (filter = {}) => {
        const local = this.policyClaim(filter);
        return local ? Promise.resolve(local.claimed) : ops.claim(filter);
      },
      // The partition stays this controller's while the database is away: it is waited for, not
      // failed (a partition failed for an outage would spend an attempt, or stay IN_PROGRESS
      // under a live owner when even the failure cannot be recorded).
      checkpoint: (ref, cp, bytes = 0) => this.waitFor(() => ops.checkpoint(ref, cp, bytes)),
      complete: async (ref, bytes = 0) => {
        const last = await this.waitFor(() => ops.complete(ref, bytes));
        if (last) this.checkCompletions();
        return last;
      },
      fail: (ref, reason) => this.waitFor(() => ops.fail(ref, reason)),
      release: (ref) => this.waitFor(() => ops.release(ref)),
      clearResync: (arrayName, regions) => this.waitFor(() => ops.clearResync(arrayName, regions)),
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

  private waitFor<T>(call: () => Promise<T>): Promise<T> {
    return persist(call, () => this.mayWait());
  }

  /** One check at a time; changes seen during one ask for exactly one more. */
  protected checkCompletions(): void {
    if (!this.closed) void this.completionRuns.run();
  }

  /**
   * Heartbeat, and apart from it reaping of dead peers and journal pruning, through the channel:
   * a busy database delays them, never the I/O this thread serves. On PostgreSQL a late heartbeat
   * is the life bound's business (life-bound.ts), so the heartbeat never waits behind a slow
   * reap or prune; on SQLite the flock is the life and a late beat is nothing.
   */
  private housekeeping(): void {
    if (this.closed || this.life?.state === 'lost') return;
    void this.beat();
    void this.reap();
  }

  /** Holding its member I/O: errors of an absent database are expected, and reaping waits. */
  private fenced(): boolean {
    return this.life?.state === 'overdue';
  }

  private async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      const sent = this.life?.sending();
      await this.thread.ops.heartbeat(this.id);
      if (sent !== undefined) this.life?.renewed(sent);
    } catch (err) {
      if ((err as { code?: string }).code === 'ESTALE') this.life?.reaped((err as Error).message);
      if (!this.closed && !this.fenced()) this.onError(err as Error);
    } finally {
      this.beating = false;
    }
  }

  private async reap(): Promise<void> {
    if (this.reaping || this.fenced()) return;
    this.reaping = true;
    try {
      const ops = this.thread.ops;
      if ((await ops.reapDead(this.id)).length > 0) this.checkCompletions();
      if (++this.beats % 200 === 0) await ops.pruneEvents(this.opts.eventsKeep ?? 100_000);
    } catch (err) {
      if (!this.closed && !this.fenced()) this.onError(err as Error);
    } finally {
      this.reaping = false;
    }
  }
}

/**
 * A controller on the state directory's SQLite database, with synchronous registries on this
 * thread's own connection for tools and tests (a serving controller does not use them).
 */
export class LocalCoordinator extends Coordinator {
  readonly controllers: ControllerRegistry;
  readonly arrays: ArrayRegistry;
  readonly tasks: TaskStore;
  readonly work: PartitionWork;
  readonly events: EventLog;
  readonly self: ControllerRecord;

  constructor(readonly db: Database, readonly stateDir: string, opts: CoordinatorOptions) {
    const controllers = new ControllerRegistry(db, stateDir);
    const self = controllers.register({ address: opts.address });
    const thread = new DbThread(stateDir, self.id, { watchMs: opts.tickMs ?? 10 });
    super({
      id: self.id, channel: thread,
      end: async () => {
        await thread.close();
        controllers.stop(self.id);
        db.close();
      },
    }, opts);
    this.controllers = controllers;
    this.self = self;
    const who = { controller: self.id };
    this.arrays = new ArrayRegistry(db, who);
    this.tasks = new TaskStore(db, who);
    this.work = new PartitionWork(db, self.id);
    this.events = new EventLog(db);
  }

  /** Creates a task initiated by this controller; its completion action runs here. */
  createTask(t: Omit<NewTask, 'initiator'>): TaskRecord {
    const task = this.tasks.create({ ...t, initiator: this.id });
    this.watcher.notify();
    return task;
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

  /** Read and resync access to an array's leases (not the I/O path). */
  leaseStore(arrayName: string): LeaseStore {
    return new LeaseStore(this.db, this.id, arrayName);
  }

  /** Resolves with the task once it is DONE, FAILED or CANCELLED. */
  async waitForTask(id: number): Promise<TaskRecord> {
    for (;;) {
      const t = this.tasks.require(id);
      if (TERMINAL_TASK_STATES.includes(t.state)) return t;
      await this.waitForChange();
    }
  }

  protected override policyClaim(filter: ClaimFilter): { claimed: Claimed | undefined } | undefined {
    return this.work.hasPolicies() ? { claimed: this.work.claim(filter) } : undefined;
  }
}
