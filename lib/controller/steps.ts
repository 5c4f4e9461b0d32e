// What one partition does to a batch of its stripes, per task kind. A step is stateless: it takes
// the task's data set and a stripe range and returns what it found; the worker holds the region
// lease around it and records the checkpoint after it.
import { NbdraidError } from '../errors.js';
import { MemberError } from '../raid/stripe-ops.js';
import type { RaidVolume } from '../raid/volume.js';
import type { BackgroundBytes } from './background-bytes.js';

/** The data set of a rebuild: which slot is rebuilt onto which device. */
export interface RebuildDataset { slot: number; path: string; deviceUuid: string }

/** A partition's checkpoint: the next stripe to do and the mismatching stripes found so far. */
export interface Checkpoint { next: number; mismatches: number[] }

/** A stripe whose parity did not match, where it is on the volume and on the members. */
export interface Mismatch { stripe: number; volumeOffset: number; memberOffset: number; parityMember: number; repaired: boolean }

/** Whether a kind's step changes parity (its regions need the write-intent bit). */
export function writesParity(kind: string): boolean {
  return kind === 'repair' || kind === 'resync';
}

/**
 * Told of the inconsistent stripes a repair found, before it rewrites their parity: once
 * rewritten, nobody could find them again, so a controller that dies after the rewrite must have
 * recorded them first.
 */
export type FoundHook = (stripes: number[]) => Promise<void>;

/**
 * Runs the step of `kind` over [first, first + count); returns the stripes found inconsistent.
 * A member that fails background I/O is failed exactly as one that fails a client's request
 * (one failure policy); the step still fails, and its partition is retried on what is left.
 * The member bytes it read and wrote are added to `bytes` (a failed step adds none).
 */
export async function runStep(vol: RaidVolume, kind: string, dataset: unknown, first: number, count: number, bytes?: BackgroundBytes, found?: FoundHook): Promise<number[]> {
  try {
    return await runKind(vol, kind, dataset, first, count, bytes, found);
  } catch (err) {
    if (err instanceof MemberError) await vol.memberIoFailed(err);
    throw err;
  }
}

async function runKind(vol: RaidVolume, kind: string, dataset: unknown, first: number, count: number, bytes?: BackgroundBytes, found?: FoundHook): Promise<number[]> {
  const chunks = vol.g.chunk * count;
  const members = vol.slots.length;
  switch (kind) {
    case 'rebuild': // reads the survivors' chunks, writes the rebuilt one
      await vol.rebuildStripes((dataset as RebuildDataset).slot, first, count);
      bytes?.add(kind, (members - 1) * chunks, chunks);
      return [];
    case 'check': { // reads every member's chunks
      const bad = await vol.checkStripes(first, count);
      bytes?.add(kind, members * chunks, 0);
      return bad;
    }
    case 'repair':
    case 'resync':
      return repairRange(vol, kind, first, count, bytes, found);
    default:
      throw new NbdraidError('EINVAL', `task kind ${kind}`, 'this controller does not know how to run it; upgrade it');
  }
}

/** Checks the range, records what it found, then reads each bad stripe again and rewrites its parity. */
async function repairRange(vol: RaidVolume, kind: string, first: number, count: number, bytes?: BackgroundBytes, found?: FoundHook): Promise<number[]> {
  const bad = await vol.checkStripes(first, count);
  if (bad.length > 0) await found?.(bad);
  const c = vol.g.chunk;
  let rewritten = 0;
  for (const s of bad) if (await vol.repairStripe(s)) rewritten++;
  bytes?.add(kind, vol.slots.length * c * (count + bad.length), c * rewritten);
  return bad;
}

export function describeMismatch(vol: RaidVolume, stripe: number, repaired: boolean): Mismatch {
  return {
    stripe,
    volumeOffset: stripe * vol.g.stripeData,
    memberOffset: vol.g.memberByte(stripe, 0),
    parityMember: vol.g.parityDisk(stripe),
    repaired,
  };
}
