// Creating an array: pick the data offset as mdadm would, size the members to whole chunks,
// refuse members that carry a live md superblock (unless forced), zero whatever is not already
// zero (so parity is right from the start), and write the first superblocks.
import { NbdraidError } from '../errors.js';
import { type BlockDevice, STATE_ZERO } from '../transport/block-device.js';
import { DEFAULT_CHUNK, DEFAULT_LAYOUT, Geometry, LAYOUTS, type LayoutName, MIN_MEMBERS } from './geometry.js';
import { ArrayMetadata, type MemberDisk, newUuid, probeSuperblock } from './metadata.js';
import { formatUuid } from './superblock.js';

export interface CreateMember {
  device: BlockDevice;
  path?: string;
}

export interface CreateOptions {
  name: string;
  chunk?: number;
  layout?: LayoutName;
  /** Overwrite members that carry an md superblock. */
  force?: boolean;
  /** Data offset in bytes; default chosen from the member size as mdadm does. */
  dataOffset?: number;
}

const MIB = 1 << 20;

/**
 * mdadm's rule of thumb for v1.2: reserve up to 128 MiB before the data (room to reshape),
 * but not more than about 1/1024 of the member, and at least 1 MiB.
 */
function defaultDataOffset(memberBytes: number): number {
  let headroom = 128 * MIB;
  while (headroom > MIB && headroom * 1024 > memberBytes) headroom /= 2;
  return headroom;
}

export async function createArray(members: CreateMember[], opts: CreateOptions): Promise<ArrayMetadata> {
  const ctx = `create ${opts.name}`;
  if (members.length < MIN_MEMBERS) {
    throw new NbdraidError('EINVAL', ctx, `RAID-5 needs at least ${MIN_MEMBERS} members, got ${members.length}`);
  }
  checkDistinct(members, ctx);
  if (!opts.force) await refuseLiveSuperblocks(members, ctx);
  const geometry = planGeometry(members, opts, ctx);
  const meta = new ArrayMetadata(
    {
      uuid: newUuid(), name: opts.name.slice(0, 32), ctime: Math.floor(Date.now() / 1000),
      layout: geometry.algorithm, chunkSectors: geometry.chunk / 512, raidDisks: members.length,
      sizeSectors: (geometry.stripes * geometry.chunk) / 512, dataOffsetSectors: geometry.dataOffset / 512,
    },
    members.map((m, i): MemberDisk => ({
      devNumber: i, deviceUuid: newUuid(), role: i, device: m.device, path: m.path,
      dataSize: Math.floor((m.device.size - geometry.dataOffset) / 512),
    })),
    -1, true,
  );
  await Promise.all(members.map((m) => zeroDataArea(m.device, geometry)));
  const failed = await meta.commit(); // events 0, as mdadm writes them
  if (failed.length > 0) {
    throw new NbdraidError('EIO', ctx, `could not write the superblock of ${failed.map((d) => d.path ?? d.devNumber).join(', ')}`);
  }
  return meta;
}

function planGeometry(members: CreateMember[], opts: CreateOptions, ctx: string): Geometry {
  const chunk = opts.chunk ?? DEFAULT_CHUNK;
  const layout = opts.layout ?? DEFAULT_LAYOUT;
  if (!(layout in LAYOUTS)) throw new NbdraidError('EINVAL', ctx, `unknown layout ${layout}`);
  const smallest = Math.min(...members.map((m) => m.device.size));
  const dataOffset = opts.dataOffset ?? defaultDataOffset(smallest);
  const stripes = Math.floor(Math.max(0, smallest - dataOffset) / chunk);
  if (stripes < 1) {
    throw new NbdraidError('EINVAL', ctx, `members of ${smallest} bytes cannot hold one ${chunk}-byte chunk after the ${dataOffset}-byte data offset; use bigger members (--size) or a smaller --chunk`);
  }
  return new Geometry({ members: members.length, chunk, layout, dataOffset, stripes });
}

function checkDistinct(members: CreateMember[], ctx: string): void {
  const seen = new Set<string>();
  for (const m of members) {
    if (!m.path) continue;
    if (seen.has(m.path)) throw new NbdraidError('EINVAL', ctx, `member ${m.path} is listed twice`);
    seen.add(m.path);
  }
}

async function refuseLiveSuperblocks(members: CreateMember[], ctx: string): Promise<void> {
  for (const [i, m] of members.entries()) {
    const label = m.path ?? `member ${i}`;
    const sb = await probeSuperblock(m.device, label);
    if (sb) {
      throw new NbdraidError('EBUSY', ctx, `${label} carries the md superblock of array "${sb.name}" (uuid ${formatUuid(sb.setUuid)}, events ${sb.events}); pass --force to overwrite it`);
    }
  }
}

/** Zeroes the member's data area except where it already reads as zeroes (sparse holes). */
async function zeroDataArea(device: BlockDevice, g: Geometry): Promise<void> {
  const end = g.dataOffset + g.stripes * g.chunk;
  let pos = g.dataOffset;
  while (pos < end) {
    const extents = device.capabilities.blockStatus ? await device.blockStatus(pos, end - pos) : [{ length: end - pos, flags: 0 }];
    for (const e of extents) {
      const len = Math.min(e.length, end - pos);
      if (!(e.flags & STATE_ZERO)) await device.writeZeroes(pos, len);
      pos += len;
      if (pos >= end) break;
    }
  }
}
