// An in-place migration of an array that nothing else is using, partition by partition: record
// the reshape on the members, copy each partition the predicate allows (the caller picks which
// among them), move md's boundary in the superblocks after each, and at the end leave superblocks
// that describe the destination geometry alone.
import { NbdraidError } from '../errors.js';
import type { BlockDevice } from '../transport/block-device.js';
import type { ArrayMetadata } from './metadata.js';
import { MemberSet, copyPartition } from './migration-copy.js';
import { type OrderPolicy, type PartitionState, checkOrderable, dependencies, runnable } from './migration-order.js';
import type { MigrationPlan } from './migration-plan.js';
import { type AddedMember, advanceReshape, beginReshape, finishReshape } from './reshape-metadata.js';

export interface RunOptions {
  policy?: OrderPolicy;
  /** Chooses the next partition among those the predicate allows (default the first). */
  pick?: (ready: number[]) => number;
  /** Called after each partition is complete and recorded. */
  onPartition?: (index: number, states: PartitionState[]) => void | Promise<void>;
}

export async function migrateOffline(meta: ArrayMetadata, plan: MigrationPlan, added: AddedMember[], opts: RunOptions = {}): Promise<void> {
  const policy = opts.policy ?? 'md-resumable';
  const deps = dependencies(plan);
  checkOrderable(plan, deps, policy);
  beginReshape(meta, plan, added);
  await commit(meta);
  const members = membersOf(meta, plan);
  const states: PartitionState[] = plan.partitions.map(() => 'pending');
  for (let ready = runnable(plan, deps, states, policy); ready.length > 0; ready = runnable(plan, deps, states, policy)) {
    const i = opts.pick ? opts.pick(ready) : ready[0];
    if (!ready.includes(i)) throw new NbdraidError('EINVAL', 'migration', `partition ${i} is not allowed to run now`);
    states[i] = 'running';
    await copyPartition(plan, members, i);
    states[i] = 'complete';
    advanceReshape(meta, plan, states);
    await commit(meta);
    await opts.onPartition?.(i, states);
  }
  finishReshape(meta, plan);
  await commit(meta);
}

/** Slot-indexed devices of both geometries: the same devices in place, plus the added slots. */
function membersOf(meta: ArrayMetadata, plan: MigrationPlan): { source: MemberSet; destination: MemberSet } {
  const { source, destination } = plan.geometry;
  const inSlot = (slot: number): BlockDevice | null => meta.diskInSlot(slot)?.device ?? null;
  return {
    source: new MemberSet(source, Array.from({ length: source.members }, (_, s) => inSlot(s))),
    destination: new MemberSet(destination, Array.from({ length: destination.members }, (_, s) => inSlot(s))),
  };
}

async function commit(meta: ArrayMetadata): Promise<void> {
  const failed = await meta.commit();
  if (failed.length > 0) {
    throw new NbdraidError('EIO', `migration of ${meta.info.name}`, `could not write the superblocks of ${failed.map((d) => d.path ?? d.devNumber).join(', ')}`);
  }
}
