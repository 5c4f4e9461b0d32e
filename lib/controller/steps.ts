// What one partition does to a batch of its stripes, per task kind. A step is stateless: it takes
// the task's data set and a stripe range and returns what it found; the worker holds the region
// lease around it and records the checkpoint after it.
import { NbdraidError } from '../errors.js';
import { MemberError } from '../raid/stripe-ops.js';
import type { RaidVolume } from '../raid/volume.js';

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
 * Runs the step of `kind` over [first, first + count); returns the stripes found inconsistent.
 * A member that fails background I/O is failed exactly as one that fails a client's request
 * (one failure policy); the step still fails, and its partition is retried on what is left.
 */
export async function runStep(vol: RaidVolume, kind: string, dataset: unknown, first: number, count: number): Promise<number[]> {
  try {
    return await runKind(vol, kind, dataset, first, count);
  } catch (err) {
    if (err instanceof MemberError) await vol.memberIoFailed(err);
    throw err;
  }
}

async function runKind(vol: RaidVolume, kind: string, dataset: unknown, first: number, count: number): Promise<number[]> {
  switch (kind) {
    case 'rebuild':
      await vol.rebuildStripes((dataset as RebuildDataset).slot, first, count);
      return [];
    case 'check':
      return vol.checkStripes(first, count);
    case 'repair':
    case 'resync':
      return repairRange(vol, first, count);
    default:
      throw new NbdraidError('EINVAL', `task kind ${kind}`, 'this controller does not know how to run it; upgrade it');
  }
}

async function repairRange(vol: RaidVolume, first: number, count: number): Promise<number[]> {
  const bad = await vol.checkStripes(first, count);
  for (const s of bad) await vol.repairStripe(s);
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
