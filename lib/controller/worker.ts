// The worker loop of a controller: while free, claim a READY partition of this array's tasks,
// complete it region by region under the region leases and the throttle, checkpoint after each
// region, and give the partition back (with its checkpoint) on pause or shutdown.
import type { Claimed, Coordinator, LeaseCache, PartitionRef } from '../coordination/index.js';
import { NbdraidError } from '../errors.js';
import type { Log } from '../log.js';
import type { RaidVolume } from '../raid/volume.js';
import type { BackgroundBytes } from './background-bytes.js';
import { runPass } from './region-pass.js';
import { type Checkpoint, writesParity } from './steps.js';
import type { Throttle } from './throttle.js';

export interface WorkerContext {
  coord: Coordinator;
  volume: RaidVolume;
  cache: LeaseCache;
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
   * Stripes of the partition from cp.next up to the end of their region, under its lease
   * (runPass); when a peer wants the region it gets it after the windows in flight: what is done
   * is checkpointed, the lease goes, and the next call asks for it again. Returns the task's
   * state after the checkpoint.
   */
  private async runRegion(ref: PartitionRef, kind: string, dataset: unknown, cp: Checkpoint, end: number): Promise<string> {
    const { cache, volume, regionStripes, coord } = this.ctx;
    const region = Math.floor(cp.next / regionStripes);
    const regionEnd = Math.min(end, (region + 1) * regionStripes);
    const write = writesParity(kind);
    const asked = performance.now();
    if (!cache.tryAcquire(region, { write })) {
      await cache.acquire(region, { write });
      this.ctx.onLeaseWait?.((performance.now() - asked) / 1000);
    }
    try {
      const from = cp.next;
      cp.next = await runPass({
        volume, throttle: this.ctx.throttle, bytes: this.ctx.bytes,
        checkpoint: (r, c) => coord.async.checkpoint(r, c, 0),
        shouldYield: () => cache.isWanted(region) || this.stopping,
      }, ref, kind, dataset, cp, regionEnd);
      if (kind === 'resync' && cp.next === regionEnd) {
        await coord.async.clearResync(this.ctx.arrayName, [region]);
        this.ctx.afterResync?.();
      }
      // Checkpoint while still holding the lease: whoever takes the region next sees it done.
      return await coord.async.checkpoint(ref, cp, (cp.next - from) * volume.g.chunk);
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
