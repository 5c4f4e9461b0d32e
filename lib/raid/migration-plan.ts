// A migration cut into partitions, in destination order: partition i moves volume bytes
// [lo, hi) from the source stripes holding them to the destination stripes holding them. Partition
// bounds are multiples of both geometries' stripe data (or the end of a volume), so no stripe of
// either geometry is shared by two partitions: each one reads and writes whole stripes only.
// A stripe occupies the same rows on every member, so a partition reads one sector range on
// each source member and writes one on each destination member.
import { NbdraidError } from '../errors.js';
import type { Geometry } from './geometry.js';
import type { MigrationGeometry } from './migration-geometry.js';

/** [first, end) */
export interface Span { first: number; end: number }

/** Sectors [first, end) on `member`, from the start of the member (data offset included). */
export interface MemberSpan extends Span { member: number }

export interface Partition {
  index: number;
  /** Volume bytes moved. */
  volume: { lo: number; hi: number };
  /** Source stripes read; null past the source's end (new space: the destination gets zeroes). */
  sourceStripes: Span | null;
  destinationStripes: Span;
  /** Member sectors read, one span per source member (empty past the source's end). */
  reads: MemberSpan[];
  /** Member sectors written, one span per destination member. */
  writes: MemberSpan[];
}

/**
 * forwards: run from the first partition up (md's forward reshape: the destination lies at or
 * before the unread source); backwards: from the last down (the destination lies after it).
 */
export type Direction = 'forwards' | 'backwards';

export interface MigrationPlan {
  geometry: MigrationGeometry;
  direction: Direction;
  /** Volume bytes per partition (all but the last). */
  partitionBytes: number;
  partitions: Partition[];
}

/**
 * Smallest volume length whose bounds are stripe bounds in both geometries, and also in md's
 * reshape unit (the larger chunk times each geometry's data members): Linux md assembles a
 * reshape in progress only when reshape_position, a partition bound, lies on such a bound.
 */
export function partitionUnit(mg: MigrationGeometry): number {
  const { source: s, destination: d } = mg;
  const big = Math.max(s.chunk, d.chunk);
  return [s.stripeData, d.stripeData, big * s.dataMembers, big * d.dataMembers].reduce(lcm);
}

/** Partitions of at least `minBytes` of volume each (rounded up to whole units). */
export function planPartitions(mg: MigrationGeometry, minBytes = 0, direction: Direction = 'forwards'): MigrationPlan {
  const unit = partitionUnit(mg);
  const partitionBytes = unit * Math.max(1, Math.ceil(minBytes / unit));
  if (!Number.isSafeInteger(partitionBytes)) {
    throw new NbdraidError('EINVAL', 'migration', `the two geometries share no stripe bound below ${Number.MAX_SAFE_INTEGER} bytes`);
  }
  const partitions: Partition[] = [];
  for (let lo = 0, i = 0; lo < mg.destination.size; lo += partitionBytes, i++) {
    partitions.push(partition(mg, i, lo, Math.min(lo + partitionBytes, mg.destination.size)));
  }
  return { geometry: mg, direction, partitionBytes, partitions };
}

function partition(mg: MigrationGeometry, index: number, lo: number, hi: number): Partition {
  const { source, destination } = mg;
  const destinationStripes = stripesOf(destination, lo, hi);
  const sourceStripes = lo < source.size ? stripesOf(source, lo, Math.min(hi, source.size)) : null;
  return {
    index, volume: { lo, hi }, sourceStripes, destinationStripes,
    reads: sourceStripes ? memberSpans(source, sourceStripes) : [],
    writes: memberSpans(destination, destinationStripes),
  };
}

/** Stripes holding volume bytes [lo, hi) (bounds are stripe bounds of g). */
function stripesOf(g: Geometry, lo: number, hi: number): Span {
  return { first: Math.floor(lo / g.stripeData), end: Math.ceil(hi / g.stripeData) };
}

function memberSpans(g: Geometry, stripes: Span): MemberSpan[] {
  const first = g.memberByte(stripes.first, 0) / 512;
  const end = g.memberByte(stripes.end, 0) / 512;
  return Array.from({ length: g.members }, (_, member) => ({ member, first, end }));
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}
