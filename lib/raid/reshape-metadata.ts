// The metadata side of an in-place migration: the added members join their slots, the superblocks
// record the reshape and its boundary as partitions complete, and at the end describe the
// destination geometry alone (no reshape bit), as md leaves them after a reshape.
import { NbdraidError } from '../errors.js';
import type { BlockDevice } from '../transport/block-device.js';
import { type ArrayMetadata, newUuid } from './metadata.js';
import type { PartitionState } from './migration-order.js';
import type { MigrationPlan } from './migration-plan.js';
import { reshapeInfo } from './reshape-fields.js';

export interface AddedMember { device: BlockDevice; path?: string }

/** Records the migration in `meta` (not yet written): added members take slots n..n'-1. */
export function beginReshape(meta: ArrayMetadata, plan: MigrationPlan, added: AddedMember[]): void {
  const { source, destination } = plan.geometry;
  const ctx = `migration of ${meta.info.name}`;
  if (plan.geometry.placement !== 'in-place') throw new NbdraidError('EINVAL', ctx, 'only an in-place migration is recorded in the members');
  if (meta.info.reshape) throw new NbdraidError('EBUSY', ctx, 'a migration is already in progress');
  if (added.length !== Math.max(0, destination.members - source.members)) {
    throw new NbdraidError('EINVAL', ctx, `${destination.members - source.members} members to add, ${added.length} given`);
  }
  const end = destination.dataOffset + destination.stripes * destination.chunk;
  for (const a of added) {
    if (a.device.size < end) throw new NbdraidError('ENOSPC', ctx, `${a.path ?? 'an added member'} holds ${a.device.size} bytes; the new geometry needs ${end}`);
  }
  let devNumber = Math.max(...meta.disks.map((d) => d.devNumber)) + 1;
  added.forEach((a, i) => meta.disks.push({
    devNumber: devNumber++, deviceUuid: newUuid(), role: source.members + i, device: a.device, path: a.path,
    dataSize: Math.floor((a.device.size - destination.dataOffset) / 512),
  }));
  meta.info.reshape = reshapeInfo(plan, plan.partitions.map(() => 'pending'));
}

/** The boundary reached by partitions in `states`, for the next commit. */
export function advanceReshape(meta: ArrayMetadata, plan: MigrationPlan, states: PartitionState[]): void {
  meta.info.reshape = reshapeInfo(plan, states);
}

/** Every partition complete: the members now describe the destination geometry only. */
export function finishReshape(meta: ArrayMetadata, plan: MigrationPlan): void {
  const { source, destination } = plan.geometry;
  const moved = (source.dataOffset - destination.dataOffset) / 512;
  for (const d of meta.disks) if (d.role < source.members) d.dataSize += moved;
  Object.assign(meta.info, {
    layout: destination.algorithm, chunkSectors: destination.chunk / 512, raidDisks: destination.members,
    sizeSectors: (destination.stripes * destination.chunk) / 512, dataOffsetSectors: destination.dataOffset / 512,
    reshape: undefined,
  });
}
