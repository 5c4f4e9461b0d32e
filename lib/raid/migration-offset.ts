// md's new_offset idea for an in-place migration: move the destination's data offset so that no
// partition's destination overlaps source that is still to be read, when it runs in order.
// Forwards (a grow): the destination starts early enough that each partition writes below its own
// source (and so below every later one); it needs room before the data. Backwards: the destination
// starts late enough that each partition writes above its own source (and every earlier one),
// running from the last partition down; it needs room after the data. Where neither fits, the
// offset stays and the dependency predicate (migration-order.ts) orders the partitions; the
// partitions whose destination overlaps their own source are then critical.
import type { Geometry } from './geometry.js';
import { type GeometryChange, type Placement, migrationGeometry, withDestinationOffset } from './migration-geometry.js';
import { type Direction, type MigrationPlan, planPartitions } from './migration-plan.js';

export interface Room {
  /** Lowest data offset the members allow, bytes (past the superblock and any bitmap). */
  lowest: number;
  /** Bytes of the smallest member that holds destination data. */
  memberBytes: number;
}

export interface MigrationOptions {
  placement?: Placement;
  /** Least volume bytes per partition (rounded up to whole stripes of both geometries). */
  partitionBytes?: number;
  /** Where the data offset may move; without it (or with change.dataOffset given) it stays. */
  room?: Room;
}

export function planMigration(source: Geometry, change: GeometryChange, opts: MigrationOptions = {}): MigrationPlan {
  const plan = planPartitions(migrationGeometry(source, change, opts.placement), opts.partitionBytes);
  if (plan.geometry.placement === 'new-devices' || change.dataOffset !== undefined || !opts.room) return plan;
  return shifted(plan, opts.room) ?? plan;
}

function shifted(plan: MigrationPlan, room: Room): MigrationPlan | undefined {
  const back = shiftNeeded(plan, 'forwards');
  if (back <= 0) return plan;
  const ahead = shiftNeeded(plan, 'backwards');
  if (ahead <= 0) return { ...plan, direction: 'backwards' };
  const d = plan.geometry.destination;
  const early = d.dataOffset - roundUp4K(back * 512);
  if (early >= room.lowest) return planPartitions(withDestinationOffset(plan.geometry, early), plan.partitionBytes, 'forwards');
  const late = d.dataOffset + roundUp4K(ahead * 512);
  if (late + d.stripes * d.chunk <= room.memberBytes) {
    return planPartitions(withDestinationOffset(plan.geometry, late), plan.partitionBytes, 'backwards');
  }
  return undefined;
}

/**
 * Sectors the destination must move (earlier for forwards, later for backwards) so that each
 * partition's destination clears its own source and all source still to come in that direction.
 * Every member holds the same spans, so the first member's stand for all.
 */
export function shiftNeeded(plan: MigrationPlan, direction: Direction): number {
  let need = -Infinity;
  let sourceEnd = -Infinity; // backwards: the highest source sector of partitions up to here
  for (const p of plan.partitions) {
    const w = p.writes[0];
    const r = p.reads[0];
    if (direction === 'forwards') {
      if (r) need = Math.max(need, w.end - r.first);
    } else {
      if (r) sourceEnd = Math.max(sourceEnd, r.end);
      need = Math.max(need, sourceEnd - w.first);
    }
  }
  return need;
}

function roundUp4K(bytes: number): number {
  return Math.ceil(bytes / 4096) * 4096;
}
