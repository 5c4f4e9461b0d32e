// The worker loop of a controller: while free, claim a READY partition of this array's tasks,
// complete it region by region under the region leases and the throttle, checkpoint after each
// region, and give the partition back (with its checkpoint) on pause or shutdown.
import type { Claimed, Coordinator, LeaseCache, LeaseStore, PartitionRef } from '../coordination/index.js';
import { NbdraidError } from '../errors.js';
import type { Log } from '../log.js';
import type { RaidVolume } from '../raid/volume.js';
import type { BackgroundBytes } from './background-bytes.js';
import { type Checkpoint, runStep, writesParity } from './steps.js';
import type { Throttle } from './throttle.js';

export interface WorkerContext {
  coord: Coordinator;
  volume: RaidVolume;
  cache: LeaseCache;
  leaseStore: LeaseStore;
  throttle: Throttle;
  regionStripes: number;
  arrayName: string;
  log: Log;
  /** Where the steps count the member bytes they read and wrote. */
  bytes?: BackgroundBytes;
  /** A region lease the background work had to wait for, and how long (s). */
  onLeaseWait?: (seconds: number) => void;
  /** Called before a claimed partition runs (e.g. to adopt membership changes first). */
  beforeRun?: (claimed: Claimed) => Promise<void>;
  /** Called after a region's pending resync was cleared (the array may now be clean). */
  afterResync?: () => void;
}

/**
 * Volume data of one step, roughly (at least one stripe): a window after which the worker looks
 * whether a peer wants the region. With at most STEPS_IN_FLIGHT steps outstanding, a peer's
 * request waits for a few MiB of background I/O, never for a whole region's pass.
 */
const WINDOW_BYTES = 2 << 20;
const STEPS_IN_FLIGHT = 4;

/**
 * Partitions one controller works on at once. A partition runs region by region with a barrier
 * at each checkpoint; a second one keeps the members busy across those barriers (a 1 GiB rebuild
 * on one controller went from 8.8 s to 6.7 s here).
 */
const PARTITIONS_AT_ONCE = 2;

export class Worker {
  private stopping = false;
  private loop: Promise<void> | undefined;
  private readonly wakers = new Set<() => void>();

  constructor(private readonly ctx: WorkerContext) {}

  start(): void {
    this.loop ??= Promise.all(Array.from({ length: PARTITIONS_AT_ONCE }, () => this.run())).then(() => undefined);
  }

  /** Finishes the current region, gives the partition back and stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.poke();
    await this.loop;
  }

  /** Looks for work now instead of at the next change. */
  poke(): void {
    for (const wake of [...this.wakers]) wake();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let claimed: Claimed | undefined;
      try {
        claimed = this.ctx.volume.offline ? undefined : await this.ctx.coord.async.claim({ arrayName: this.ctx.arrayName });
      } catch (err) {
        this.ctx.log({ event: 'partition.claim-failed', level: 'warn', message: `claim failed: ${(err as Error).message}` });
      }
      if (claimed) await this.runPartition(claimed);
      else await this.idle();
    }
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, 500);
      const stop = this.ctx.coord.watcher.subscribe(done);
      const wakers = this.wakers;
      function done(): void {
        clearTimeout(t);
        stop();
        wakers.delete(done);
        resolve();
      }
      wakers.add(done);
    });
  }

  private async runPartition(claimed: Claimed): Promise<void> {
    const { task, partition } = claimed;
    const ref: PartitionRef = { taskId: task.id, idx: partition.idx };
    const cp: Checkpoint = { next: partition.stripeStart, mismatches: [], ...(partition.checkpoint as Partial<Checkpoint> | null) };
    try {
      await this.ctx.beforeRun?.(claimed);
      while (cp.next < partition.stripeEnd) {
        if (this.stopping) return await this.ctx.coord.async.release(ref);
        const state = await this.runRegion(ref, task.kind, task.dataset, cp, partition.stripeEnd);
        if (state === 'PAUSED') return await this.ctx.coord.async.release(ref);
      }
      await this.ctx.coord.async.complete(ref);
    } catch (err) {
      await this.failed(ref, err as Error);
    }
  }

  /**
   * Stripes of the partition from cp.next up to the end of their region, under its lease, in
   * windows; when a peer wants the region it gets it after the windows in flight: what is done
   * is checkpointed, the lease goes, and the next call asks for it again. Returns the task's
   * state after the checkpoint.
   */
  private async runRegion(ref: PartitionRef, kind: string, dataset: unknown, cp: Checkpoint, end: number): Promise<string> {
    const { cache, throttle, volume, regionStripes } = this.ctx;
    const region = Math.floor(cp.next / regionStripes);
    const regionEnd = Math.min(end, (region + 1) * regionStripes);
    const window = Math.max(1, Math.floor(WINDOW_BYTES / volume.g.stripeData));
    const write = writesParity(kind);
    const asked = performance.now();
    if (!cache.tryAcquire(region, { write })) {
      await cache.acquire(region, { write });
      this.ctx.onLeaseWait?.((performance.now() - asked) / 1000);
    }
    const from = cp.next;
    let stop = from;
    try {
      const jobs = new Set<Promise<void>>();
      const failures: Promise<void>[] = [];
      let failed = false;
      // At least one window per turn of the lease, so that a peer wanting it all the time does
      // not starve the background work.
      // Found stripes are recorded before their parity is rewritten (with the checkpoint's
      // position unchanged): a survivor redoing the region still reports them.
      const found = async (bad: number[]): Promise<void> => {
        recorded = union(recorded, bad);
        await this.ctx.coord.async.checkpoint(ref, { next: from, mismatches: recorded }, 0);
      };
      let recorded = cp.mismatches;
      const more = (): boolean => stop < regionEnd && !failed && (stop === from || (!cache.isWanted(region) && !this.stopping));
      try {
        while (more()) {
          if (jobs.size >= STEPS_IN_FLIGHT) await Promise.race([...jobs].map((j) => j.catch(() => undefined)));
          const count = Math.min(window, regionEnd - stop);
          const release = await throttle.acquire(count * volume.g.chunk);
          const job: Promise<void> = runStep(volume, kind, dataset, stop, count, this.ctx.bytes, found)
            .then((bad) => { cp.mismatches = union(cp.mismatches, bad); })
            .finally(() => { release(); jobs.delete(job); });
          job.catch(() => { failed = true; }); // reported by settleAll below
          jobs.add(job);
          failures.push(job);
          stop += count;
        }
      } finally {
        // No step may outlive the lease (whatever ended the loop).
        await Promise.allSettled(failures);
      }
      await settleAll(failures);
      if (kind === 'resync' && stop === regionEnd) {
        await this.ctx.coord.async.clearResync(this.ctx.arrayName, [region]);
        this.ctx.afterResync?.();
      }
      cp.mismatches = union(cp.mismatches, recorded);
      cp.next = stop;
      // Checkpoint while still holding the lease: whoever takes the region next sees it done.
      return await this.ctx.coord.async.checkpoint(ref, cp, (stop - from) * volume.g.chunk);
    } finally {
      cache.release(region, { write });
    }
  }

  private async failed(ref: PartitionRef, err: Error): Promise<void> {
    if (err instanceof NbdraidError && err.code === 'ECANCELED') {
      await this.tryRelease(ref);
      return;
    }
    this.ctx.log({ event: 'partition.failed', level: 'error', message: `task ${ref.taskId} partition ${ref.idx} failed: ${err.message}`, fields: { task: ref.taskId, partition: ref.idx } });
    try {
      await this.ctx.coord.async.fail(ref, err.message);
    } catch (e) {
      this.ctx.log({ event: 'partition.fail-unrecorded', level: 'error', message: `could not record the failure: ${(e as Error).message}`, fields: { task: ref.taskId, partition: ref.idx } });
    }
  }

  private async tryRelease(ref: PartitionRef): Promise<void> {
    try {
      await this.ctx.coord.async.release(ref);
    } catch {
      // already given back or the task ended: nothing to do
    }
  }
}

/** The stripes of both lists, each once, ascending. */
function union(a: number[], b: number[]): number[] {
  return [...new Set([...a, ...b])].sort((x, y) => x - y);
}

/** Waits for every job, then throws the first error. */
async function settleAll(jobs: Promise<void>[]): Promise<void> {
  const rs = await Promise.allSettled(jobs);
  const bad = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
}
