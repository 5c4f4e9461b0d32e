// ArrayMetadata: the in-memory truth of an assembled array's superblocks, and the one place that
// writes them. Invariant: every state change (failure, removal, dirty/clean, recovery progress)
// goes through commit(), which bumps `events` and writes the superblock to every live member.
import { randomBytes } from 'node:crypto';
import { NbdraidError } from '../errors.js';
import type { BlockDevice } from '../transport/block-device.js';
import { Geometry, layoutName } from './geometry.js';
import { type ReshapeInfo, reshapeSuperblock } from './reshape-fields.js';
import {
  FEATURE_BITMAP_OFFSET, FEATURE_RECOVERY_OFFSET, MAX_SECTOR, ROLE_FAULTY, ROLE_SPARE, SB_OFFSET, SB_OFFSET_SECTORS,
  type Superblock, decodeSuperblock, encodeSuperblock,
} from './superblock.js';

export interface ArrayInfo {
  uuid: Buffer;
  name: string;
  /** Creation time, seconds. */
  ctime: number;
  /** md raid5 algorithm 0..3. */
  layout: number;
  chunkSectors: number;
  raidDisks: number;
  /** Used data sectors per member. */
  sizeSectors: number;
  dataOffsetSectors: number;
  /**
   * md's internal bitmap, kept as md wrote it: nbdraid does not update it, so its events fall
   * behind and md treats it as stale (a full resync where the array is dirty, never a wrong
   * partial one). Bit FEATURE_BITMAP_OFFSET of the feature map and the bitmap's offset.
   */
  bitmap?: { offsetSectors: number };
  /**
   * A migration in progress (md's reshape fields). The fields above stay the source geometry's;
   * this holds the destination and the boundary reached (see reshape-fields.ts).
   */
  reshape?: ReshapeInfo;
}

/**
 * What the superblocks say about the array, in one canonical form: clean or active, the role of
 * every device that has one (slot or ROLE_FAULTY), and the recovered prefix of rebuilding ones.
 * Two states that compare equal write the same superblocks (but for events and utime).
 */
export interface MdState {
  clean: boolean;
  /** [devNumber, role], by devNumber; spares and unused entries left out. */
  roles: [number, number][];
  /** [devNumber, sectors recovered], by devNumber, for members being rebuilt. */
  recovery: [number, number][];
}

export function sameMdState(a: MdState, b: MdState): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** True when a device that is in a slot in `before` is not in a slot in `after` (it failed or went missing). */
export function leavesMember(before: MdState, after: MdState, raidDisks: number): boolean {
  const now = new Map(after.roles);
  return before.roles.some(([dev, role]) => role < raidDisks && !((now.get(dev) ?? ROLE_SPARE) < raidDisks));
}

export interface MemberDisk {
  /** Permanent index into dev_roles. */
  devNumber: number;
  deviceUuid: Buffer;
  /** Slot, ROLE_SPARE or ROLE_FAULTY. */
  role: number;
  /** The open member, or null when absent (its superblock cannot be written). */
  device: BlockDevice | null;
  path?: string;
  /** Sectors of the member usable for data (device size - data offset). */
  dataSize: number;
  /** Set while the member is being rebuilt: sectors from data_offset already recovered. */
  recoveryOffset?: number;
  /** The member's own devflags and bad-block log fields (see Superblock), kept when rewritten. */
  badBlockLog?: Buffer;
}

export class ArrayMetadata {
  constructor(
    readonly info: ArrayInfo,
    readonly disks: MemberDisk[],
    public events: number,
    public clean: boolean,
  ) {}

  geometry(): Geometry {
    return new Geometry({
      members: this.info.raidDisks,
      chunk: this.info.chunkSectors * 512,
      layout: layoutName(this.info.layout),
      dataOffset: this.info.dataOffsetSectors * 512,
      stripes: Math.floor(this.info.sizeSectors / this.info.chunkSectors),
    });
  }

  /** The disk in `slot` (active or rebuilding), if any. */
  diskInSlot(slot: number): MemberDisk | undefined {
    return this.disks.find((d) => d.role === slot);
  }

  superblockFor(disk: MemberDisk, now = Math.floor(Date.now() / 1000)): Superblock {
    const maxDev = Math.max(this.info.raidDisks, this.info.reshape?.raidDisks ?? 0, ...this.disks.map((d) => d.devNumber + 1));
    const devRoles = new Array<number>(maxDev).fill(ROLE_SPARE);
    for (const d of this.disks) devRoles[d.devNumber] = d.role;
    const recovering = disk.recoveryOffset !== undefined && disk.role < ROLE_FAULTY;
    const bitmap = this.info.bitmap;
    const sb: Superblock = {
      featureMap: (recovering ? FEATURE_RECOVERY_OFFSET : 0) | (bitmap ? FEATURE_BITMAP_OFFSET : 0),
      bitmapOffset: bitmap?.offsetSectors ?? 0, badBlockLog: disk.badBlockLog ?? Buffer.alloc(8),
      setUuid: this.info.uuid, name: this.info.name, ctime: this.info.ctime,
      level: 5, layout: this.info.layout, size: this.info.sizeSectors, chunkSectors: this.info.chunkSectors,
      raidDisks: this.info.raidDisks, dataOffset: this.info.dataOffsetSectors, dataSize: disk.dataSize,
      superOffset: SB_OFFSET_SECTORS, recoveryOffset: recovering ? disk.recoveryOffset ?? 0 : 0,
      devNumber: disk.devNumber, deviceUuid: disk.deviceUuid, utime: now, events: this.events,
      resyncOffset: this.clean ? MAX_SECTOR : 0n, devRoles,
    };
    if (!this.info.reshape) return sb;
    const r = reshapeSuperblock(this.info, disk.role);
    return { ...sb, ...r, featureMap: sb.featureMap | r.featureMap };
  }

  /** The superblocks' view of the array, in canonical form. */
  mdState(): MdState {
    const byDev = [...this.disks].sort((a, b) => a.devNumber - b.devNumber);
    return {
      clean: this.clean,
      roles: byDev.filter((d) => d.role !== ROLE_SPARE).map((d) => [d.devNumber, d.role]),
      recovery: byDev.filter((d) => d.role < ROLE_FAULTY && d.recoveryOffset !== undefined).map((d) => [d.devNumber, d.recoveryOffset as number]),
    };
  }

  /** Disks whose superblock is written: those with a device and a slot (md writes no faulty member). */
  liveDisks(): MemberDisk[] {
    return this.disks.filter((d) => d.device && d.role < ROLE_FAULTY);
  }

  /**
   * Bumps events by `bump` and writes (and syncs) the superblock of every live member. Returns
   * the disks whose write failed; the caller decides what that means. A change that takes a
   * member out bumps by 2, so the member left behind is never "one behind" (which md and mdadm
   * still accept as up to date).
   */
  async commit(bump = 1): Promise<MemberDisk[]> {
    const live = this.liveDisks();
    // Continue from the highest events on the members so the counter never goes back.
    const onDisk = await Promise.all(live.map((d) => probeSuperblock(d.device as BlockDevice, d.path ?? 'member').catch(() => undefined)));
    this.events = Math.max(this.events, ...onDisk.map((sb) => (sb && sb.setUuid.equals(this.info.uuid) ? sb.events : -Infinity))) + bump;
    return this.writeLive();
  }

  /** Writes (and syncs) the superblock of every live member at the current events. */
  async writeLive(): Promise<MemberDisk[]> {
    const live = this.liveDisks();
    const now = Math.floor(Date.now() / 1000);
    const results = await Promise.allSettled(live.map((d) => writeSuperblock(d.device as BlockDevice, this.superblockFor(d, now))));
    return live.filter((_, i) => results[i].status === 'rejected');
  }
}

export async function writeSuperblock(device: BlockDevice, sb: Superblock): Promise<void> {
  await device.write(SB_OFFSET, encodeSuperblock(sb));
  await device.flush();
}

/** Reads and validates the superblock of a member. */
export async function readSuperblock(device: BlockDevice, ctx: string): Promise<Superblock> {
  if (device.size < SB_OFFSET + 4096) throw new NbdraidError('EINVAL', ctx, 'too small to hold an md superblock');
  const buf = Buffer.alloc(4096);
  await device.read(SB_OFFSET, buf);
  return decodeSuperblock(buf, ctx);
}

/** The superblock of a member, or undefined when it has none (any decode failure). */
export async function probeSuperblock(device: BlockDevice, ctx: string): Promise<Superblock | undefined> {
  try {
    return await readSuperblock(device, ctx);
  } catch (err) {
    if (err instanceof NbdraidError && err.code === 'EINVAL') return undefined;
    throw err;
  }
}

export function newUuid(): Buffer {
  return randomBytes(16);
}
