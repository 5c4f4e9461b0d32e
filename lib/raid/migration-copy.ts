// The copy engine for one partition of a migration: read its volume bytes through the source
// geometry (reconstructing from parity where a member is missing), write them as whole stripes of
// the destination geometry with fresh parity, then flush the destination members, so a partition
// reported done is on stable storage before anyone records it complete.
// The caller holds the partition's region leases (source and destination) and runs it only when
// the dependency predicate allows (migration-order.ts). A critical partition (its destination
// over its own source) is refused: a crash in the middle would leave it neither old nor new.
import { NbdraidError } from '../errors.js';
import type { BlockDevice } from '../transport/block-device.js';
import type { Geometry } from './geometry.js';
import { overlaps } from './migration-order.js';
import type { MigrationPlan } from './migration-plan.js';
import { MemberError, type StripeEnv, readStripe, settle, writeStripe } from './stripe-ops.js';

/** Member access through one geometry over a slot-indexed device list (null: slot missing). */
export class MemberSet implements StripeEnv {
  constructor(readonly g: Geometry, readonly devices: (BlockDevice | null)[]) {}

  missingSlot(stripe: number): number {
    const missing = this.devices.flatMap((d, i) => (d ? [] : [i]));
    if (missing.length > 1) throw new NbdraidError('EIO', 'migration', `slots ${missing.join(' and ')} missing at stripe ${stripe}: RAID-5 needs all but one`);
    return missing.length ? missing[0] : -1;
  }

  memberRead(slot: number, byte: number, into: Buffer): Promise<void> {
    return this.io(slot, (d) => d.read(byte, into));
  }

  memberWrite(slot: number, byte: number, data: Buffer, fua: boolean): Promise<void> {
    return this.io(slot, (d) => d.write(byte, data, { fua }));
  }

  memberZero(slot: number, byte: number, length: number, fua: boolean): Promise<void> {
    return this.io(slot, (d) => d.writeZeroes(byte, length, { fua }));
  }

  /** fdatasync of every present member. */
  flush(): Promise<void> {
    return settle(this.devices.map((d, i) => (d ? this.io(i, (x) => x.flush()) : Promise.resolve())));
  }

  private async io(slot: number, fn: (d: BlockDevice) => Promise<void>): Promise<void> {
    const d = this.devices[slot];
    try {
      if (!d) throw new NbdraidError('EIO', `slot ${slot}`, 'no member in this slot');
      await fn(d);
    } catch (err) {
      throw new MemberError(slot, err);
    }
  }
}

export interface MigrationMembers {
  source: MemberSet;
  destination: MemberSet;
}

/** Copies partition `index` of `plan`; throws (MemberError or NbdraidError) without recording anything. */
export async function copyPartition(plan: MigrationPlan, members: MigrationMembers, index: number): Promise<void> {
  const p = plan.partitions[index];
  const { source: sg, destination: dg, placement } = plan.geometry;
  if (placement === 'in-place' && overlaps(p.writes, p.reads)) {
    throw new NbdraidError('ENOTSUP', `migration partition ${index}`, 'its destination overlaps its own source and would need a backup; plan with room to move the data offset');
  }
  const data = Buffer.alloc(p.volume.hi - p.volume.lo); // past the source's end: zeroes
  if (p.sourceStripes) {
    const { first, end } = p.sourceStripes;
    await settle(Array.from({ length: end - first }, (_, i) => readStripe(members.source, first + i,
      0, data.subarray(i * sg.stripeData, (i + 1) * sg.stripeData))));
  }
  const { first, end } = p.destinationStripes;
  const failed = await Promise.all(Array.from({ length: end - first }, (_, i) => writeStripe(members.destination, first + i,
    0, data.subarray(i * dg.stripeData, (i + 1) * dg.stripeData), false)));
  const slots = [...new Set(failed.flat())];
  if (slots.length > 0) throw new MemberError(slots[0], new Error(`write failed on slots ${slots.join(', ')}`));
  await members.destination.flush();
}
