// One turn of background work over a region whose lease the worker holds: steps of about
// WINDOW_BYTES of stripes, at most STEPS_IN_FLIGHT at once, until the region's end, a failed
// step, or (after the first window) a peer wanting the region or the worker stopping. No step
// outlives the pass, whatever ends it, so the lease can go once it returns.
import type { PartitionRef } from '../coordination/index.js';
import type { RaidVolume } from '../raid/volume.js';
import type { BackgroundBytes } from './background-bytes.js';
import { type Checkpoint, runStep } from './steps.js';
import type { Throttle } from './throttle.js';

/**
 * Volume data of one step, roughly (at least one stripe): with at most STEPS_IN_FLIGHT steps
 * outstanding, a peer's request waits for a few MiB of background I/O, never for a whole pass.
 */
const WINDOW_BYTES = 2 << 20;
const STEPS_IN_FLIGHT = 4;

export interface PassContext {
  volume: RaidVolume;
  throttle: Throttle;
  bytes?: BackgroundBytes;
  /** Records a checkpoint of the partition (the coordination thread). */
  checkpoint(ref: PartitionRef, cp: Checkpoint): Promise<unknown>;
  /** True when the pass should end at the next window: the region is wanted, or the worker stops. */
  shouldYield(): boolean;
}

/** The stripes of both lists, each once, ascending. */
export function union(a: number[], b: number[]): number[] {
  return [...new Set([...a, ...b])].sort((x, y) => x - y);
}

/**
 * Runs `kind` over [cp.next, end) in windows; returns the first stripe not done. Mismatches go
 * into cp.mismatches. A repair's found stripes are checkpointed before their parity is rewritten
 * (position unchanged): once rewritten nobody could find them again, so a survivor redoing the
 * region must read them from the checkpoint.
 */
export async function runPass(ctx: PassContext, ref: PartitionRef, kind: string, dataset: unknown, cp: Checkpoint, end: number): Promise<number> {
  const { volume, throttle } = ctx;
  const window = Math.max(1, Math.floor(WINDOW_BYTES / volume.g.stripeData));
  const from = cp.next;
  let stop = from;
  let failed = false;
  let recorded = cp.mismatches;
  const found = async (bad: number[]): Promise<void> => {
    recorded = union(recorded, bad);
    await ctx.checkpoint(ref, { next: from, mismatches: recorded });
  };
  const jobs = new Set<Promise<void>>();
  const all: Promise<void>[] = [];
  // At least one window per turn of the lease, so that a peer wanting it all the time does not
  // starve the background work.
  const more = (): boolean => stop < end && !failed && (stop === from || !ctx.shouldYield());
  let settled: PromiseSettledResult<void>[] = [];
  try {
    while (more()) {
      if (jobs.size >= STEPS_IN_FLIGHT) await Promise.race([...jobs].map((j) => j.catch(() => undefined)));
      if (!more()) break; // wanted, stopping or failed while a step was awaited
      const count = Math.min(window, end - stop);
      const release = await throttle.acquire(count * volume.g.chunk);
      if (!more()) { // ... or while the throttle paced us: the slot goes back unused
        release();
        break;
      }
      const job: Promise<void> = runStep(volume, kind, dataset, stop, count, ctx.bytes, found)
        .then((bad) => { cp.mismatches = union(cp.mismatches, bad); })
        .finally(() => { release(); jobs.delete(job); });
      job.catch(() => { failed = true; }); // thrown below, once every step has settled
      jobs.add(job);
      all.push(job);
      stop += count;
    }
  } finally {
    settled = await Promise.allSettled(all);
  }
  const bad = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
  cp.mismatches = union(cp.mismatches, recorded);
  return stop;
}
