// One controller process: registers with the coordination object, assembles the array, serves it
// over NBD with every member access under region leases, runs the worker loop for background
// partitions, and carries out the initiator's duties (starting rebuilds and resyncs, running
// completion actions of tasks it initiated or adopted). Once serving, every coordination call it
// makes goes through the coordination thread (coord.async, coord.thread.ops) or the lease cache:
// the thread that serves NBD runs no SQL.
import type { ArrayRecord, CoordinationTarget, Coordinator, LeaseCache, LifeState } from '../coordination/index.js';
import { Coordinator as CoordinatorClass, persist } from '../coordination/index.js';
import { isRemoteMember, openMember, remoteMemberTimeout } from '../raid/members.js';
import { IoFence } from '../transport/io-fence.js';
import { openVolume } from '../raid/open.js';
import { parseUuid } from '../raid/superblock.js';
import type { RaidVolume } from '../raid/volume.js';
import { type ListenAddress, NbdServer, type NbdServerOptions } from '../transport/server.js';
import { ArraySync } from './array-sync.js';
import { BackgroundBytes } from './background-bytes.js';
import { registerCompletions } from './completions.js';
import { LeaseGate } from './lease-gate.js';
import { ControllerMetrics, type MetricsAddress } from './metrics.js';
import { planRange, planRegions, regionStripes } from './plans.js';
import { type RebuildDataset, runStep } from './steps.js';
import { Coalesced } from '../coalesced.js';
import { NbdraidError } from '../errors.js';
import { type Log, type LogFormat, lineLog, plainLines } from '../log.js';
import { RecordStore } from './record-store.js';
import { SuperblockWriter } from './superblock-writer.js';
import { Throttle } from './throttle.js';
import { Worker } from './worker.js';

export interface ControllerOptions {
  stateDir: string;
  arrayName: string;
  /** The coordination object (lib/coordination/target.ts); default: the SQLite database in stateDir. */
  coordination?: CoordinationTarget;
  listen: ListenAddress;
  /** Assemble even with stale members or a dirty degraded array (as mdadm --force). */
  force?: boolean;
  /** Where log entries go; default: stderr in `logFormat`. */
  log?: Log;
  /** The format of the default log (lib/log.ts); default human. */
  logFormat?: LogFormat;
  /** The NBD server's limits (payload budget, connections, timeouts). */
  serverLimits?: Omit<NbdServerOptions, 'exports' | 'log'>;
  /** Serve Prometheus metrics at http://HOST:PORT/metrics (metrics.ts); none without. */
  metrics?: MetricsAddress;
}

/** How often the initiator duties are looked at besides registry changes (ms). */
const DUTY_MS = 500;
/** How often idle written regions are flushed so that their write-intent bits can be cleared (ms). */
const CLEAN_MS = 3000;

/**
 * A region's write-intent bit is cleared once no write touched it for this long (md's bitmap
 * daemon waits about as long). Shorter, and a workload that comes back to its regions every few
 * seconds pays a member flush and a synced commit per region per pass: sequential 2 MiB writes
 * over 2 GiB ran at half speed with a p99 of a second, stalled behind those flushes.
 */
const IDLE_CLEAN_MS = 5000;
/** Least time between automatic restarts of a failed rebuild (ms). */
const RETRY_MS = 30_000;
/** Least time between two reads of the array's record on change notices (ms). */
const RECORD_LOOK_MS = 100;

export class Controller {
  readonly regionStripes: number;
  readonly throttle: Throttle;
  /** Member bytes this controller's background work read and wrote, by task kind. */
  readonly bytes = new BackgroundBytes();
  private readonly worker: Worker;
  private readonly sync: ArraySync;
  private readonly timer: NodeJS.Timeout;
  private readonly cleaner: NodeJS.Timeout;
  private readonly stopWatching: () => void;
  private stopped = false;
  private lastRebuildRestart = 0;
  private readonly dutyRuns = new Coalesced(() => this.dutiesOnce(), () => !this.stopped);
  /** The --metrics endpoint, when asked for. */
  metrics: ControllerMetrics | null = null;
  /**
   * Resolves, with why, if this controller loses its life on the coordination database (others
   * may own its work now): it has stopped all member I/O and serves no more; its process ends.
   */
  readonly ended: Promise<string>;
  private endWith: (why: string) => void = () => undefined;

  private constructor(
    readonly coord: Coordinator,
    readonly volume: RaidVolume,
    readonly server: NbdServer,
    readonly cache: LeaseCache,
    readonly writer: SuperblockWriter,
    readonly opts: ControllerOptions,
    /** This controller's log (serve prints its own lines through it too). */
    readonly log: Log,
    rec: ArrayRecord,
    /** Every member request passes it (io-fence.ts). */
    readonly fence: IoFence,
  ) {
    const name = opts.arrayName;
    this.regionStripes = regionStripes(volume.g);
    this.throttle = new Throttle(rec.throttle);
    this.ended = new Promise((resolve) => { this.endWith = resolve; });
    this.sync = new ArraySync(coord, volume, name, log, fence);
    this.worker = new Worker({
      coord, volume, cache, throttle: this.throttle, regionStripes: this.regionStripes, arrayName: name, log, bytes: this.bytes,
      onLeaseWait: (seconds) => this.metrics?.leaseWaited(seconds, 'background'),
      // Reads the record: with the database away it waits for it (a sync is safe to repeat) rather
      // than failing the partition it is about to run.
      beforeRun: () => persist(() => this.sync.sync(), () => coord.mayWait()),
      afterResync: () => this.syncSuperblocks(),
    });
    registerCompletions(coord, volume, name, this.sync, log);
    this.stopWatching = this.watchRecord();
    this.timer = setInterval(() => void this.duties(), DUTY_MS);
    this.cleaner = setInterval(() => void this.markIdleRegionsClean(), CLEAN_MS);
  }

  /**
   * Starts a controller for `arrayName`: assemble, bring the superblocks up to the record, listen,
   * then take background work.
   */
  static async start(opts: ControllerOptions): Promise<Controller> {
    const context: { controller?: number; array: string } = { array: opts.arrayName };
    const log = opts.log ?? lineLog(opts.logFormat ?? 'human', context);
    const address = 'path' in opts.listen ? `unix:${opts.listen.path}` : `${opts.listen.host ?? '127.0.0.1'}:${opts.listen.port}`;
    const late: { ctl?: Controller; gate?: LeaseGate } = {};
    // Every member request of this controller passes the fence: held while its life on the
    // database is in doubt, sealed once it is lost (life-bound.ts).
    const fence = new IoFence();
    // Lost before it serves: the start gives up at once (whatever it waits for at the sealed
    // fence never comes), so that the process can end.
    let lostBeforeServing: (err: Error) => void = () => undefined;
    const lostEarly = new Promise<never>((_, reject) => { lostBeforeServing = reject; });
    lostEarly.catch(() => undefined);
    const coord = await CoordinatorClass.connect(opts.coordination ?? { kind: 'sqlite', stateDir: opts.stateDir }, {
      address,
      onError: (e) => log({ event: 'coordination.error', level: 'error', message: `coordination: ${e.message}` }),
      onLife: (state, why) => lifeChanged(state, why),
    });
    const lifeChanged = (state: LifeState, why: string): void => {
      if (state === 'overdue') fence.hold();
      else if (state === 'live') fence.open();
      else fence.seal();
      const level = state === 'live' ? 'info' : state === 'overdue' ? 'warn' : 'error';
      log({ event: `controller.${state === 'live' ? 'renewed' : state === 'overdue' ? 'fenced' : 'lost'}`, level, message: `${opts.arrayName}: controller ${coord.id} ${state === 'live' ? 'renewed its heartbeat: member I/O resumes' : state === 'overdue' ? 'holds all member I/O' : 'stopped all member I/O for good'}: ${why}`, fields: { state, waiting: fence.waiting } });
      if (state !== 'lost') return;
      late.ctl?.lost(why);
      lostBeforeServing(new NbdraidError('ESTALE', `serve ${opts.arrayName}`, `controller ${coord.id} lost its life on the coordination database while starting (${why}); it stopped all member I/O: start it again`));
    };
    // Judged again at every member request, not only by the life bound's timer: after a stop
    // (SIGSTOP, a long pause) I/O callbacks may run before any timer does.
    fence.beforePass = coord.life ? () => coord.life?.check() : undefined;
    context.controller = coord.id;
    let metrics: ControllerMetrics | null = null;
    const begin = async (): Promise<Controller> => {
      const name = opts.arrayName;
      const ops = coord.thread.ops;
      // Bound first: a busy metrics address fails the start before the members are opened.
      if (opts.metrics) metrics = await ControllerMetrics.listen(name, opts.metrics);
      const rec = await requireArray(coord, name);
      refuseSlowRemoteMembers(coord, rec);
      await refuseDirtyDegraded(coord, rec, !!opts.force);
      const paths = rec.members.filter((m) => m.slot !== null && (m.state === 'active' || m.state === 'rebuilding')).map((m) => m.path);
      const mayWait = (): boolean => coord.mayWait();
      const writer = new SuperblockWriter(ops, coord.thread.lockSuperblocks ?? opts.stateDir, name, { fence, keepTrying: mayWait });
      // The record is the truth: a change it holds that a killed writer left half written
      // reaches every member before they are assembled (else assembly sees them torn).
      if (await writer.behind()) await writer.sync().catch((err: Error) => superblockFailed(log, `${name}: superblocks not brought up to the record before assembly: ${err.message}`));
      const cache = coord.leases(name, {
        idleCleanMs: IDLE_CLEAN_MS,
        afterDirty: () => writer.sync(),
        afterClean: () => void writer.sync().catch((err: Error) => superblockFailed(log, `${name}: superblocks not marked clean: ${err.message}`)),
      });
      // The volume, its gate and the controller refer to each other; `late` ties them after creation.
      const { volume, opened } = await openVolume(paths, {
        name, force: opts.force, lock: 'shared', fence,
        volume: {
          trackClean: false, // active/clean follows the regions' write intent (SuperblockWriter)
          metadata: new RecordStore(ops, writer, mayWait),
          gate: {
            get regionStripes() { return late.gate!.regionStripes; },
            enter: (a, b, w) => late.gate!.enter(a, b, w),
            leave: (a, b, w) => late.gate!.leave(a, b, w),
          },
          onMemberFailed: (slot, reason) => late.ctl?.memberFailed(slot, reason),
          log: plainLines(log, 'raid'),
        },
      });
      try {
        const written = await ops.writtenEvents(name);
        if (opened.wrote) await ops.recordWritten(name, opened.onDisk.events, opened.onDisk.state); // forced in
        else if (written !== undefined && opened.onDisk.events > written) {
          throw new NbdraidError('ESTALE', `serve ${name}`, `the members are at events ${opened.onDisk.events}, newer than this state directory's record (${written}): they were changed elsewhere (by mdadm, or under another state directory); record them again with 'nbdraid assemble ${name} MEMBER...'`);
        }
        if (opts.force) await warnForced(coord, rec, opened.missing, log);
        await writer.sync(); // a degraded start, or a change a crash left unwritten, reaches the members now
      } catch (err) {
        await volume.close();
        throw err;
      }
      late.gate = new LeaseGate(cache, regionStripes(volume.g), {
        onRequest: () => late.ctl?.throttle.noteForeground(),
        afterFetch: (a, b) => late.ctl?.afterFetch(a, b),
        onLeaseWait: (seconds) => metrics?.leaseWaited(seconds, 'client'),
      });
      const server = new NbdServer({ ...opts.serverLimits, exports: [{ name, device: volume }], observer: metrics?.requests, log: plainLines(log, 'nbd', 'warn') });
      const ctl = new Controller(coord, volume, server, cache, writer, opts, log, rec, fence);
      late.ctl = ctl;
      ctl.metrics = metrics;
      metrics?.attach({ coord, volume, server, throttle: ctl.throttle, bytes: ctl.bytes });
      await ctl.applyThrottle();
      await ctl.sync.sync();
      await server.listen(opts.listen);
      ctl.worker.start();
      void ctl.duties();
      return ctl;
    };
    try {
      const starting = begin();
      starting.catch(() => undefined); // the race below reports it, or the loss came first
      return await Promise.race([starting, lostEarly]);
    } catch (err) {
      await (metrics as ControllerMetrics | null)?.close();
      await coord.close();
      throw err;
    }
  }

  get id(): number {
    return this.coord.id;
  }

  /** Stops serving: in-flight requests finish, partitions go back READY, leases are handed back. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.cleaner);
    this.stopWatching();
    await this.metrics?.close();
    await this.server.close();
    await this.worker.stop();
    await this.dutyRuns.inFlight; // its calls are answered before the coordinator closes
    if (!this.volume.offline) {
      // Flushed members let this controller's write-intent bits go now; if no other controller
      // has any, the superblocks say clean before the members are let go.
      try {
        const token = this.cache.flushToken();
        await this.volume.flush();
        this.cache.flushed(token);
        await this.cache.cleanFlushed();
        await this.writer.sync();
      } catch (err) {
        this.log({ event: 'array.clean-failed', level: 'warn', message: `${this.opts.arrayName}: could not mark the array clean on stop: ${(err as Error).message}` });
      }
    }
    await this.volume.close();
    await this.coord.close(); // gives the leases back; bits still set stay for the next holder or a resync
  }

  /**
   * Lost: the fence is sealed, so nothing this controller still has in flight reaches a member.
   * Clients are cut off (their requests wait at the fence; they reconnect to another controller),
   * background work ends where it stands, and nothing is given back: the reaper does that.
   */
  lost(why: string): void {
    this.endWith(why); // also when a stop is under way: it may wait at the sealed fence for good
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.cleaner);
    this.stopWatching();
    const quiet = (p: Promise<unknown> | undefined) => void p?.catch(() => undefined);
    quiet(this.metrics?.close());
    quiet(this.server.close());
    quiet(this.worker.stop());
    quiet(this.coord.close());
  }

  /** Brings the superblocks up to the record (cheap when nothing changed); errors are logged. */
  private syncSuperblocks(): void {
    if (this.stopped) return;
    this.writer.sync().catch((err: Error) => superblockFailed(this.log, `${this.opts.arrayName}: superblock update failed: ${err.message}`));
  }

  /**
   * Write intent is cleared lazily, as md's bitmap: make the members durable, then the lease cache
   * clears the bits of regions that saw no write since, once they stay idle.
   */
  private async markIdleRegionsClean(): Promise<void> {
    if (this.stopped || this.volume.offline || !this.cache.hasIdleDirty()) return;
    const token = this.cache.flushToken();
    try {
      await this.volume.flush();
      this.cache.flushed(token);
    } catch (err) {
      this.log({ event: 'write-intent.flush-failed', level: 'warn', message: `${this.opts.arrayName}: flush for write intent failed: ${(err as Error).message}` });
    }
  }

  /**
   * Calls onRegistryChange when the array's record moved: on the coordinator's change notices, at
   * most every RECORD_LOOK_MS, reading the record's revision through the coordination thread.
   */
  private watchRecord(): () => void {
    let revision = -1;
    let state: 'idle' | 'scheduled' = 'idle';
    const look = async (): Promise<void> => {
      state = 'idle';
      if (this.stopped) return;
      try {
        const rec = await this.coord.thread.ops.arrayGet(this.opts.arrayName);
        if (!rec || rec.revision === revision) return;
        revision = rec.revision;
        await this.onRegistryChange();
      } catch (err) {
        if (!this.stopped) this.log({ event: 'record.read-failed', level: 'warn', message: `${this.opts.arrayName}: ${(err as Error).message}` });
      }
    };
    const stop = this.coord.watcher.subscribe(() => {
      if (state === 'scheduled') return;
      state = 'scheduled';
      setTimeout(() => void look(), RECORD_LOOK_MS);
    });
    void look();
    return stop;
  }

  private async onRegistryChange(): Promise<void> {
    if (this.stopped) return;
    await this.applyThrottle();
    await this.sync.sync();
    await this.duties();
  }

  /**
   * The array's MB/s limits are shared out among the live controllers (md's limits are per
   * array); the in-flight bound stays per controller.
   */
  private async applyThrottle(): Promise<void> {
    const ops = this.coord.thread.ops;
    const [rec, live] = await Promise.all([ops.arrayGet(this.opts.arrayName), ops.liveControllers()]);
    if (!rec) return;
    const t = rec.throttle;
    const n = Math.max(1, live);
    this.throttle.setLimits({ minMBps: t.minMBps / n, maxMBps: t.maxMBps / n, inflight: t.inflight });
  }

  /** A lease was fetched: catch up with others' changes, and resync the region first if it needs it. */
  private async afterFetch(first: number, last: number): Promise<void> {
    await this.sync.sync();
    const pending = (await this.coord.thread.ops.pendingResync(this.opts.arrayName)).filter((r) => r >= first && r <= last);
    for (const region of pending) {
      if (this.volume.slots.some((s) => s.state !== 'active')) break; // degraded: parity cannot be recomputed
      const start = region * this.regionStripes;
      const count = Math.min(this.regionStripes, this.volume.g.stripes - start);
      const bad = await runStep(this.volume, 'resync', null, start, count, this.bytes);
      await this.coord.async.clearResync(this.opts.arrayName, [region]);
      this.syncSuperblocks();
      if (bad.length > 0) {
        this.log({ event: 'region.resynced', message: `${this.opts.arrayName}: region ${region} resynced before use (${bad.length} stripes fixed)`, fields: { region, stripesFixed: bad.length } });
      }
    }
  }

  /** The volume failed a member (its store records it in the registry and the superblocks). */
  private memberFailed(slot: number, reason: string): void {
    this.log({ event: 'member.failed', level: 'warn', message: `${this.opts.arrayName}: member ${slot} failed (${reason})`, fields: { slot, reason } });
    void this.duties();
  }

  /**
   * Initiator duties: rebuild onto a spare when degraded, resync dirty regions of dead controllers.
   * One run at a time (each is several calls to the coordination thread); asked during a run, it
   * runs once more after it. stop() waits for the run in flight.
   */
  private duties(): Promise<void> {
    return this.dutyRuns.run();
  }

  private async dutiesOnce(): Promise<void> {
    if (this.stopped || this.volume.offline) return;
    try {
      await this.applyThrottle();
      this.syncSuperblocks();
      await this.maybeStartRebuild();
      await this.maybeStartResync();
    } catch (err) {
      if (this.stopped) return; // a call cut short by the stop
      this.log({ event: 'duty.failed', level: 'error', message: `${this.opts.arrayName}: ${(err as Error).message}` });
    }
  }

  private async activeTask(kind: string) {
    return (await this.coord.thread.ops.tasks(this.opts.arrayName, true)).find((t) => t.kind === kind);
  }

  private async maybeStartRebuild(): Promise<void> {
    if (await this.activeTask('rebuild')) return;
    const resume = this.volume.slots.find((s) => s.state === 'rebuilding');
    if (resume) return this.restartRebuild(resume.index);
    const slot = this.volume.slots.find((s) => s.state === 'faulty' || s.state === 'missing');
    if (!slot) return;
    // One transaction picks the spare: of several controllers seeing the failure, one wins.
    const chosen = await this.coord.thread.ops.assignSpare(this.opts.arrayName, slot.index);
    if (!chosen) return;
    const handle = await openMember(chosen.path, { lock: 'shared', fence: this.fence });
    await this.volume.addRebuildMember(slot.index, handle.device, { path: chosen.path, deviceUuid: parseUuid(chosen.deviceUuid), devNumber: chosen.devNumber });
    await this.createRebuild({ slot: slot.index, path: chosen.path, deviceUuid: chosen.deviceUuid });
  }

  private async createRebuild(dataset: RebuildDataset): Promise<void> {
    const task = await this.coord.async.createTaskUnlessActive({ kind: 'rebuild', arrayName: this.opts.arrayName, dataset, partitions: planRange(this.volume.g.stripes, this.regionStripes) });
    if (!task) return; // another controller started it first
    this.log({
      event: 'rebuild.started',
      message: `${this.opts.arrayName}: rebuilding slot ${dataset.slot} onto ${dataset.path} (task ${task.id}, ${task.partitionsTotal} partitions)`,
      fields: { task: task.id, slot: dataset.slot, path: dataset.path, partitions: task.partitionsTotal },
    });
    this.worker.poke();
  }

  /**
   * A member is being rebuilt but no rebuild task runs (it failed, or was cancelled): start it
   * again, at most once per RETRY_MS. Stripes already recovered are simply rebuilt again.
   */
  private async restartRebuild(slot: number): Promise<void> {
    if (Date.now() - this.lastRebuildRestart < RETRY_MS) return;
    const ops = this.coord.thread.ops;
    const rec = await ops.arrayGet(this.opts.arrayName);
    const m = rec?.members.find((x) => x.slot === slot && x.state === 'rebuilding');
    if (!rec || !m) return;
    const last = (await ops.tasks(this.opts.arrayName, false))
      .filter((t) => t.kind === 'rebuild' && (t.dataset as RebuildDataset).path === m.path).pop();
    // No task yet: its initiator is about to write it, unless it died before (then wait it out).
    const since = last ? last.finishedAt ?? Date.now() : rec.updatedAt;
    if (Date.now() - since < RETRY_MS) return;
    this.lastRebuildRestart = Date.now();
    await this.createRebuild({ slot, path: m.path, deviceUuid: m.deviceUuid });
  }

  private async maybeStartResync(): Promise<void> {
    if (this.volume.slots.some((s) => s.state !== 'active') || (await this.activeTask('resync'))) return;
    const regions = await this.coord.thread.ops.pendingResync(this.opts.arrayName);
    if (regions.length === 0) return;
    const parts = planRegions(regions, this.volume.g.stripes, this.regionStripes);
    if (parts.length === 0) { // beyond the end: nothing to do
      await this.coord.async.clearResync(this.opts.arrayName, regions);
      return this.syncSuperblocks();
    }
    const task = await this.coord.async.createTaskUnlessActive({ kind: 'resync', arrayName: this.opts.arrayName, dataset: { regions }, partitions: parts });
    if (!task) return; // another controller started it first
    this.log({ event: 'resync.started', message: `${this.opts.arrayName}: resync of ${regions.length} dirty regions left by stopped controllers (task ${task.id})`, fields: { task: task.id, regions } });
    this.worker.poke();
  }
}

/** The array's record, read through the channel; ENOENT with what to do when there is none. */
async function requireArray(coord: Coordinator, name: string): Promise<ArrayRecord> {
  const rec = await coord.thread.ops.arrayGet(name);
  if (!rec) throw new NbdraidError('ENOENT', `array ${name}`, `no such array; list arrays with 'nbdraid list', create one with 'nbdraid create ${name} ...'`);
  return rec;
}

/**
 * Fencing holds member requests from T/2; one sent just before must be answered before T, when
 * others may take over. A remote member is trusted to answer within the member timeout, so that
 * timeout must stay below T/2 (docs/deployment.md).
 */
function refuseSlowRemoteMembers(coord: Coordinator, rec: ArrayRecord): void {
  const hold = coord.life?.holdAfterMs;
  if (hold === undefined || !rec.members.some((m) => isRemoteMember(m.path)) || remoteMemberTimeout() < hold) return;
  throw new NbdraidError('EINVAL', `serve ${rec.name}`, `--member-timeout (${remoteMemberTimeout() / 1000} s) must be below half of --dead-after (${hold / 1000} s) with remote members: a member write sent just before this controller holds its I/O must be answered before others may take over. Lower --member-timeout or raise --dead-after, e.g. --dead-after 20 --member-timeout 8`);
}

/** Whether parity may lag data anywhere, and where (for messages). */
async function dirtyRegions(coord: Coordinator, name: string): Promise<{ dirty: boolean; where: string }> {
  const ops = coord.thread.ops;
  const [{ written, unsynced }, pending, bits] = await Promise.all([ops.superblockSnapshot(name), ops.pendingResync(name), ops.dirtyRegions(name)]);
  const dirty = unsynced > 0 || (written !== undefined && !(written.state as { clean?: boolean }).clean);
  const regions = [...new Set([...pending, ...bits])].sort((a, b) => a - b);
  const where = regions.length > 0 ? `regions ${regions.join(', ')} (32 MiB of volume data each)` : 'any region (the members were not shut down cleanly)';
  return { dirty, where };
}

/**
 * md's rule, from the record: an array whose parity may lag its data somewhere (write-intent bits
 * or resyncs pending, or superblocks last written active) and that misses a member cannot be
 * trusted where those stripes miss their member: a block reconstructed from stale parity is wrong
 * data. Refused unless forced (the assembly refuses the same from the members' superblocks).
 */
async function refuseDirtyDegraded(coord: Coordinator, rec: ArrayRecord, force: boolean): Promise<void> {
  const inSync = new Set(rec.members.filter((m) => m.state === 'active' && m.slot !== null).map((m) => m.slot));
  const missing = Array.from({ length: rec.raidDisks }, (_, s) => s).filter((s) => !inSync.has(s));
  if (missing.length === 0 || force) return;
  const { dirty, where } = await dirtyRegions(coord, rec.name);
  if (!dirty) return;
  throw new NbdraidError('EIO', `serve ${rec.name}`, `array is dirty (writes were in flight when it stopped) and degraded (slot ${missing.join(', ')} missing): blocks of the missing member in ${where} would be rebuilt from parity that may be stale, i.e. wrong data. Bring the missing member back so the parity is resynced first, or pass --force to serve it anyway`);
}

/** Forced to serve dirty and degraded: say where the data may be wrong. */
async function warnForced(coord: Coordinator, rec: ArrayRecord, missing: number[], log: Log): Promise<void> {
  if (missing.length === 0) return;
  const { dirty, where } = await dirtyRegions(coord, rec.name);
  if (!dirty) return;
  log({ event: 'array.forced', level: 'warn', message: `${rec.name}: WARNING: serving dirty and degraded by --force: data in ${where} may be wrong where slot ${missing.join(', ')} is reconstructed`, fields: { missing } });
}

function superblockFailed(log: Log, message: string): void {
  log({ event: 'superblock.update-failed', level: 'warn', message });
}
