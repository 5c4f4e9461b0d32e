// A migration's two explicit geometries: the source the volume's data is in and the destination
// it moves to. Pure; progress is not here (migration-plan.ts cuts the work into partitions).
import { NbdraidError } from '../errors.js';
import { Geometry, type LayoutName } from './geometry.js';
import { formatSize } from './units.js';

/**
 * in-place: slot i of both geometries is the same device (slots past the source's are added
 * members). new-devices: the destination is on other devices, no slot shared with the source.
 */
export type Placement = 'in-place' | 'new-devices';

export interface MigrationGeometry {
  readonly source: Geometry;
  readonly destination: Geometry;
  readonly placement: Placement;
}

export interface GeometryChange {
  members?: number;
  chunk?: number;
  layout?: LayoutName;
  /** Destination data offset in bytes; default the source's. */
  dataOffset?: number;
  /** Bytes per member the destination uses from its data offset; default the source's (md keeps the component size). */
  usedBytes?: number;
}

export function migrationGeometry(source: Geometry, change: GeometryChange, placement: Placement = 'in-place'): MigrationGeometry {
  const chunk = change.chunk ?? source.chunk;
  const used = change.usedBytes ?? source.stripes * source.chunk;
  const destination = new Geometry({
    members: change.members ?? source.members, chunk, layout: change.layout ?? source.layout,
    dataOffset: change.dataOffset ?? source.dataOffset, stripes: Math.floor(used / chunk),
  });
  if (destination.size < source.size) {
    throw new NbdraidError('ENOSPC', 'migration', `${describeGeometry(destination)} holds ${formatSize(destination.size)}, less than the volume's ${formatSize(source.size)}; add members or use a smaller chunk`);
  }
  if (placement === 'in-place' && sameLayout(source, destination) && destination.dataOffset === source.dataOffset) {
    throw new NbdraidError('EINVAL', 'migration', `the array already is ${describeGeometry(source)}; nothing to change`);
  }
  return { source, destination, placement };
}

/** The same migration with the destination's data offset moved to `dataOffset` (bytes). */
export function withDestinationOffset(mg: MigrationGeometry, dataOffset: number): MigrationGeometry {
  const d = mg.destination;
  const destination = new Geometry({ members: d.members, chunk: d.chunk, layout: d.layout, dataOffset, stripes: d.stripes });
  return { ...mg, destination };
}

/** True when both geometries place every volume byte at the same stripe, slot and chunk offset. */
export function sameLayout(a: Geometry, b: Geometry): boolean {
  return a.members === b.members && a.chunk === b.chunk && a.layout === b.layout;
}

export function describeGeometry(g: Geometry): string {
  return `${g.members} members, ${formatSize(g.chunk)} chunk, ${g.layout}`;
}
