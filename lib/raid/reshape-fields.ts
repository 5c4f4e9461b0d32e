// A migration as md's superblock records a reshape: the destination's member count, layout, chunk
// and data offset beside the source's, and one boundary (reshape_position, array sectors) that
// the completed run of partitions has reached. So `mdadm --examine` shows a reshape in progress,
// and a member set carries its migration without the database.
import { layoutName } from './geometry.js';
import type { ArrayInfo } from './metadata.js';
import { type PartitionState, completedRun } from './migration-order.js';
import type { Direction, MigrationPlan } from './migration-plan.js';
import { formatSize } from './units.js';
import {
  FEATURE_NEW_OFFSET, FEATURE_RESHAPE_ACTIVE, FEATURE_RESHAPE_BACKWARDS, type ReshapeFields, type Superblock,
} from './superblock.js';

/** A migration in progress, in the superblocks' terms (sectors). */
export interface ReshapeInfo {
  /** Destination member count, md algorithm and chunk. */
  raidDisks: number;
  layout: number;
  chunkSectors: number;
  /** Destination data offset minus the source's (signed). */
  offsetDelta: number;
  direction: Direction;
  /** md's reshape_position: the array sector the completed run of partitions reaches. */
  position: number;
}

/** The superblock view of `plan` with partitions in `states`. */
export function reshapeInfo(plan: MigrationPlan, states: PartitionState[]): ReshapeInfo {
  const { source, destination } = plan.geometry;
  return {
    raidDisks: destination.members, layout: destination.algorithm, chunkSectors: destination.chunk / 512,
    offsetDelta: (destination.dataOffset - source.dataOffset) / 512, direction: plan.direction,
    position: boundary(plan, states) / 512,
  };
}

/**
 * Volume byte where the completed run ends (forwards) or starts (backwards): always a partition
 * bound, which md takes as a reshape boundary (see partitionUnit).
 */
function boundary(plan: MigrationPlan, states: PartitionState[]): number {
  const inRun = completedRun(plan, states);
  const ps = plan.partitions;
  if (plan.direction === 'forwards') return ps.find((p) => !inRun(p.index))?.volume.lo ?? plan.geometry.destination.size;
  return [...ps].reverse().find((p) => !inRun(p.index))?.volume.hi ?? 0;
}

/**
 * What a member's superblock carries while `info.reshape` runs. Members the destination adds
 * hold no source data: their data offset is the destination's, with no new_offset.
 */
export function reshapeSuperblock(info: ArrayInfo, slot: number): Pick<Superblock, 'featureMap' | 'raidDisks' | 'dataOffset' | 'reshape'> {
  const r = info.reshape as ReshapeInfo;
  const added = slot >= info.raidDisks && slot < r.raidDisks;
  const newOffset = added ? 0 : r.offsetDelta;
  const fields: ReshapeFields = {
    newLevel: 5, position: r.position, deltaDisks: r.raidDisks - info.raidDisks,
    newLayout: r.layout, newChunkSectors: r.chunkSectors, newOffset,
  };
  const featureMap = FEATURE_RESHAPE_ACTIVE | (newOffset !== 0 ? FEATURE_NEW_OFFSET : 0)
    | (r.direction === 'backwards' ? FEATURE_RESHAPE_BACKWARDS : 0);
  return {
    featureMap, raidDisks: Math.max(info.raidDisks, r.raidDisks),
    dataOffset: info.dataOffsetSectors + (added ? r.offsetDelta : 0), reshape: fields,
  };
}

/** The migration a superblock records, in the source's terms (raid_disks back to the old count). */
export function reshapeFromSuperblock(sb: Superblock): { oldRaidDisks: number; reshape: ReshapeInfo } | undefined {
  const f = sb.reshape;
  if (!f) return undefined;
  const grows = f.deltaDisks > 0;
  const oldRaidDisks = grows ? sb.raidDisks - f.deltaDisks : sb.raidDisks;
  return {
    oldRaidDisks,
    reshape: {
      raidDisks: oldRaidDisks + f.deltaDisks, layout: f.newLayout, chunkSectors: f.newChunkSectors,
      offsetDelta: sb.featureMap & FEATURE_NEW_OFFSET ? f.newOffset : 0,
      direction: sb.featureMap & FEATURE_RESHAPE_BACKWARDS ? 'backwards' : 'forwards', position: f.position,
    },
  };
}

/** One line for people: what changes and how far it got, e.g. "3 -> 4 members, 64K -> 16K chunk; at 5.63M of 128M". */
export function describeReshape(sb: Superblock): string {
  const m = reshapeFromSuperblock(sb);
  if (!m) return 'no migration';
  const r = m.reshape;
  const change = (what: string, a: string | number, b: string | number) => (a === b ? [] : [`${a} -> ${b}${what}`]);
  const parts = [
    ...change(' members', m.oldRaidDisks, r.raidDisks),
    ...change(' chunk', formatSize(sb.chunkSectors * 512), formatSize(r.chunkSectors * 512)),
    ...change('', layoutName(sb.layout), layoutName(r.layout)),
    ...change(' data offset', formatSize(sb.dataOffset * 512), formatSize((sb.dataOffset + r.offsetDelta) * 512)),
  ];
  const volume = sb.size * (m.oldRaidDisks - 1) * 512;
  return `${parts.join(', ')}; ${r.direction}, at ${formatSize(r.position * 512)} of ${formatSize(volume)}`;
}
