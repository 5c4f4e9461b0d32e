// RAID-5 geometry, pure: maps volume offsets to (stripe, data member, parity member, member offset)
// and back, for md's four layouts. Offsets on a member are relative to its data_offset here;
// `memberByte` adds the data offset.
import { NbdraidError } from '../errors.js';

export const LAYOUTS = {
  'left-asymmetric': 0,
  'right-asymmetric': 1,
  'left-symmetric': 2,
  'right-symmetric': 3,
} as const;

export type LayoutName = keyof typeof LAYOUTS;
export const DEFAULT_CHUNK = 512 * 1024;
export const DEFAULT_LAYOUT: LayoutName = 'left-symmetric';
export const MIN_MEMBERS = 3;

export function layoutName(algorithm: number): LayoutName {
  const found = (Object.keys(LAYOUTS) as LayoutName[]).find((k) => LAYOUTS[k] === algorithm);
  if (!found) throw new NbdraidError('EINVAL', 'layout', `unknown md raid5 algorithm ${algorithm}`);
  return found;
}

export function parseLayout(name: string): LayoutName {
  if (name in LAYOUTS) return name as LayoutName;
  throw new NbdraidError('EINVAL', 'layout', `unknown layout "${name}"; use one of ${Object.keys(LAYOUTS).join(', ')}`);
}

export interface GeometryParams {
  members: number;
  chunk: number;
  layout: LayoutName;
  /** Bytes from the start of a member to its first data byte. */
  dataOffset: number;
  /** Stripes in the array (each member holds `stripes * chunk` data bytes). */
  stripes: number;
}

export interface Location {
  stripe: number;
  /** Index of the chunk among the stripe's data chunks, 0..D-1. */
  dataIndex: number;
  /** Slot holding the byte. */
  disk: number;
  parityDisk: number;
  /** Offset inside the chunk. */
  offsetInChunk: number;
  /** Byte on the member, from the start of the member (data offset included). */
  memberByte: number;
}

export class Geometry {
  readonly members: number;
  readonly dataMembers: number;
  readonly chunk: number;
  readonly layout: LayoutName;
  readonly algorithm: number;
  readonly dataOffset: number;
  readonly stripes: number;
  /** Data bytes in one stripe (D chunks). */
  readonly stripeData: number;
  /** Usable volume size in bytes. */
  readonly size: number;
  private readonly symmetric: boolean;
  private readonly leftParity: boolean;

  constructor(p: GeometryParams) {
    validate(p);
    this.members = p.members;
    this.dataMembers = p.members - 1;
    this.chunk = p.chunk;
    this.layout = p.layout;
    this.algorithm = LAYOUTS[p.layout];
    this.dataOffset = p.dataOffset;
    this.stripes = p.stripes;
    this.stripeData = this.dataMembers * p.chunk;
    this.size = p.stripes * this.stripeData;
    this.symmetric = this.algorithm >= 2;
    this.leftParity = this.algorithm === 0 || this.algorithm === 2;
  }

  /** Slot holding parity of `stripe`. */
  parityDisk(stripe: number): number {
    const r = stripe % this.members;
    return this.leftParity ? this.dataMembers - r : r;
  }

  /** Slot holding data chunk `d` of `stripe`. */
  dataDisk(stripe: number, d: number): number {
    const p = this.parityDisk(stripe);
    if (this.symmetric) return (p + 1 + d) % this.members;
    return d >= p ? d + 1 : d;
  }

  /** Data index held by `disk` in `stripe`, or -1 when it holds parity. */
  dataIndex(stripe: number, disk: number): number {
    const p = this.parityDisk(stripe);
    if (disk === p) return -1;
    if (this.symmetric) return (disk - p - 1 + this.members) % this.members;
    return disk > p ? disk - 1 : disk;
  }

  locate(offset: number): Location {
    const chunkNo = Math.floor(offset / this.chunk);
    const offsetInChunk = offset - chunkNo * this.chunk;
    const stripe = Math.floor(chunkNo / this.dataMembers);
    const dataIndex = chunkNo - stripe * this.dataMembers;
    return {
      stripe, dataIndex, offsetInChunk,
      disk: this.dataDisk(stripe, dataIndex),
      parityDisk: this.parityDisk(stripe),
      memberByte: this.memberByte(stripe, offsetInChunk),
    };
  }

  /** Volume offset of byte `offsetInChunk` of `disk`'s chunk in `stripe` (-1 for parity). */
  volumeOffset(stripe: number, disk: number, offsetInChunk: number): number {
    const d = this.dataIndex(stripe, disk);
    if (d < 0) return -1;
    return stripe * this.stripeData + d * this.chunk + offsetInChunk;
  }

  /** Byte on a member (from its start) of `offsetInChunk` within `stripe`'s chunk. */
  memberByte(stripe: number, offsetInChunk: number): number {
    return this.dataOffset + stripe * this.chunk + offsetInChunk;
  }

  /** Member-relative byte back to (stripe, offset in chunk); undefined outside the data area. */
  fromMemberByte(byte: number): { stripe: number; offsetInChunk: number } | undefined {
    const rel = byte - this.dataOffset;
    if (rel < 0 || rel >= this.stripes * this.chunk) return undefined;
    const stripe = Math.floor(rel / this.chunk);
    return { stripe, offsetInChunk: rel - stripe * this.chunk };
  }
}

function validate(p: GeometryParams): void {
  const ctx = 'geometry';
  if (!Number.isInteger(p.members) || p.members < MIN_MEMBERS) {
    throw new NbdraidError('EINVAL', ctx, `RAID-5 needs at least ${MIN_MEMBERS} members, got ${p.members}`);
  }
  if (!Number.isInteger(p.chunk) || p.chunk < 4096 || (p.chunk & (p.chunk - 1)) !== 0) {
    throw new NbdraidError('EINVAL', ctx, `chunk must be a power of two of at least 4K, got ${p.chunk}`);
  }
  if (!(p.layout in LAYOUTS)) throw new NbdraidError('EINVAL', ctx, `unknown layout ${p.layout}`);
  if (!Number.isInteger(p.dataOffset) || p.dataOffset < 0 || p.dataOffset % 4096 !== 0) {
    throw new NbdraidError('EINVAL', ctx, `data offset must be a multiple of 4K, got ${p.dataOffset}`);
  }
  if (!Number.isInteger(p.stripes) || p.stripes < 1) {
    throw new NbdraidError('EINVAL', ctx, 'members are too small to hold one stripe; use bigger members or a smaller chunk');
  }
}
