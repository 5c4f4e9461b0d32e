// The order partitions of an in-place migration may run in. A partition writes its destination
// rows; where those rows hold source data of another partition that has not been copied yet, the
// write would destroy it. So: a partition may run only when every partition whose SOURCE its
// DESTINATION overlaps (on any member, in member sectors) is COMPLETE. A partition whose
// destination overlaps its own source is critical: it cannot be redone after a crash in the middle
// (md's critical section, which md covers with a backup file); the offset choice avoids them.
//
// Two policies. overlapped-complete is the rule above. md-resumable also keeps the members
// readable by Linux md, which resumes a reshape from one boundary (reshape_position): only source
// inside the completed run from the start (in the plan's direction) may be overwritten, so every
// partition past the boundary still has its source intact and md may copy it again.
import { NbdraidError } from '../errors.js';
import type { MemberSpan, MigrationPlan } from './migration-plan.js';

export type PartitionState = 'pending' | 'running' | 'complete';
export type OrderPolicy = 'overlapped-complete' | 'md-resumable';

/**
 * For each partition, the partitions whose source its destination overlaps; itself among them
 * when it is critical.
 */
export function dependencies(plan: MigrationPlan): number[][] {
  if (plan.geometry.placement === 'new-devices') return plan.partitions.map(() => []);
  const ps = plan.partitions;
  return ps.map((p) => ps.filter((q) => overlaps(p.writes, q.reads)).map((q) => q.index));
}

/** Partitions whose destination overlaps their own source. */
export function criticalPartitions(plan: MigrationPlan): number[] {
  if (plan.geometry.placement === 'new-devices') return [];
  return plan.partitions.filter((p) => overlaps(p.writes, p.reads)).map((p) => p.index);
}

export function overlaps(writes: MemberSpan[], reads: MemberSpan[]): boolean {
  return writes.some((w) => reads.some((r) => r.member === w.member && r.first < w.end && w.first < r.end));
}

/**
 * The predicate: may pending partition `index` start now? Under md-resumable a critical partition
 * also waits until it is next at md's boundary, since it destroys its own source.
 */
export function mayRun(plan: MigrationPlan, deps: number[][], states: PartitionState[], index: number, policy: OrderPolicy): boolean {
  if (states[index] !== 'pending') return false;
  const others = deps[index].filter((q) => q !== index);
  if (policy === 'overlapped-complete') return others.every((q) => states[q] === 'complete');
  const inRun = completedRun(plan, states);
  const next = plan.direction === 'forwards' ? index - 1 : index + 1;
  const atBoundary = next < 0 || next >= states.length || inRun(next);
  return others.every(inRun) && (others.length === deps[index].length || atBoundary);
}

/** Pending partitions that may start now. */
export function runnable(plan: MigrationPlan, deps: number[][], states: PartitionState[], policy: OrderPolicy): number[] {
  return states.flatMap((_, i) => (mayRun(plan, deps, states, i, policy) ? [i] : []));
}

/**
 * The partitions complete from the start in the plan's direction (forwards: a prefix, backwards:
 * a suffix) as a membership test; md's reshape_position is that run's boundary.
 */
export function completedRun(plan: MigrationPlan, states: PartitionState[]): (q: number) => boolean {
  if (plan.direction === 'forwards') {
    const k = states.findIndex((s) => s !== 'complete');
    return (q) => k < 0 || q < k;
  }
  let k = states.length - 1;
  while (k >= 0 && states[k] === 'complete') k--;
  return (q) => q > k;
}

/** Throws when some partitions can never run under `policy` (they wait on each other). */
export function checkOrderable(plan: MigrationPlan, deps: number[][], policy: OrderPolicy): void {
  const states: PartitionState[] = plan.partitions.map(() => 'pending');
  for (let ready = runnable(plan, deps, states, policy); ready.length > 0; ready = runnable(plan, deps, states, policy)) {
    for (const i of ready) states[i] = 'complete';
  }
  const stuck = states.flatMap((s, i) => (s === 'complete' ? [] : [i]));
  if (stuck.length > 0) {
    throw new NbdraidError('EINVAL', 'migration', `partitions ${stuck.slice(0, 5).join(', ')}${stuck.length > 5 ? ', ...' : ''} wait on each other in place; migrate onto new devices instead`);
  }
}
