// Linux md v1.2 superblock (struct mdp_superblock_1), little-endian, 4 KiB from the start of a member.
// Byte offsets follow include/uapi/linux/raid/md_p.h; the checksum sums u32 words of the first
// 256 + 2 * max_dev bytes (sb_csum read as 0) in 64 bits and folds the high half into the low.
import { NbdraidError } from '../errors.js';

export const SB_MAGIC = 0xa92b4efc;
/** v1.2: superblock 8 sectors (4 KiB) from the start of the member. */
export const SB_OFFSET_SECTORS = 8;
export const SB_OFFSET = SB_OFFSET_SECTORS * 512;
export const SB_BYTES = 4096;
export const ROLE_SPARE = 0xffff;
export const ROLE_FAULTY = 0xfffe;
/** resync_offset of a clean array: every sector in sync. */
export const MAX_SECTOR = 0xffffffffffffffffn;
export const FEATURE_BITMAP_OFFSET = 1;
export const FEATURE_RECOVERY_OFFSET = 2;
/** A reshape (migration) is in progress: the reshape fields hold its destination and boundary. */
export const FEATURE_RESHAPE_ACTIVE = 4;
/** The reshape runs from the end of the array down. */
export const FEATURE_RESHAPE_BACKWARDS = 32;
/** new_offset must be honoured: the destination's data starts at data_offset + new_offset. */
export const FEATURE_NEW_OFFSET = 64;
const FEATURES_RESHAPE = FEATURE_RESHAPE_ACTIVE | FEATURE_RESHAPE_BACKWARDS | FEATURE_NEW_OFFSET;
/**
 * Feature bits nbdraid reads and writes: an internal bitmap is kept as md wrote it (see
 * metadata.ts); the reshape bits are decoded and written (assembly still refuses a reshape in
 * progress, see assemble.ts).
 */
export const FEATURES_UNDERSTOOD = FEATURE_BITMAP_OFFSET | FEATURE_RECOVERY_OFFSET | FEATURES_RESHAPE;
const FEATURE_NAMES: [number, string][] = [
  [8, 'bad blocks recorded'], [16, 'replacement device'], [128, 'recovery bitmap'], [256, 'clustered md'], [512, 'write journal'],
  [1024, 'partial parity log'], [2048, 'multiple partial parity logs'],
];

/** The md features set in `featureMap` that nbdraid does not implement, by name. */
export function unsupportedFeatures(featureMap: number): string[] {
  const out = FEATURE_NAMES.filter(([bit]) => featureMap & bit & ~FEATURES_UNDERSTOOD).map(([, name]) => name);
  const known = FEATURE_NAMES.reduce((m, [bit]) => m | bit, FEATURES_UNDERSTOOD);
  const rest = featureMap & ~known;
  if (rest) out.push(`feature bits 0x${rest.toString(16)}`);
  return out;
}
const HEADER = 256;
const MAX_MAX_DEV = (SB_BYTES - HEADER) / 2;
const TIME_MASK = (1n << 40n) - 1n;

/** Field offsets inside the superblock. */
const O = {
  magic: 0, majorVersion: 4, featureMap: 8, setUuid: 16, setName: 32, ctime: 64, level: 72, layout: 76,
  size: 80, chunksize: 88, raidDisks: 92, bitmapOffset: 96, newLevel: 100, reshapePosition: 104, deltaDisks: 112,
  newLayout: 116, newChunk: 120, newOffset: 124, dataOffset: 128, dataSize: 136, superOffset: 144,
  recoveryOffset: 152, devNumber: 160, deviceUuid: 168, badBlockLog: 184, utime: 192, events: 200, resyncOffset: 208,
  sbCsum: 216, maxDev: 220, devRoles: 256,
} as const;

/**
 * md's reshape fields, meaningful with FEATURE_RESHAPE_ACTIVE. While one runs, raid_disks is the
 * larger of the old and new member counts, and layout and chunksize are the old ones.
 */
export interface ReshapeFields {
  newLevel: number;
  /** Next array sector to reshape: below it (forwards; above it backwards) the new geometry holds the data. */
  position: number;
  /** New members minus old (signed). */
  deltaDisks: number;
  newLayout: number;
  newChunkSectors: number;
  /** Sectors to add to data_offset for the new geometry (signed; with FEATURE_NEW_OFFSET). */
  newOffset: number;
}

export interface Superblock {
  featureMap: number;
  setUuid: Buffer;
  name: string;
  /** Seconds since the epoch. */
  ctime: number;
  level: number;
  /** md raid5 algorithm (0..3). */
  layout: number;
  /** Used data sectors per member. */
  size: number;
  chunkSectors: number;
  raidDisks: number;
  /** Sectors from the superblock to the internal bitmap (signed; meaningful with FEATURE_BITMAP_OFFSET). */
  bitmapOffset: number;
  dataOffset: number;
  dataSize: number;
  superOffset: number;
  /** Sectors from data_offset already recovered (meaningful with FEATURE_RECOVERY_OFFSET). */
  recoveryOffset: number;
  devNumber: number;
  deviceUuid: Buffer;
  /** Bytes 184-191 (devflags, bad-block log shift, size and offset), kept as md wrote them; zeroes when absent. */
  badBlockLog: Buffer;
  utime: number;
  events: number;
  /** MAX_SECTOR when clean; sectors known in sync otherwise. */
  resyncOffset: bigint;
  /** dev_roles indexed by dev_number: slot, ROLE_SPARE or ROLE_FAULTY. */
  devRoles: number[];
  /** Present exactly when the feature map has FEATURE_RESHAPE_ACTIVE. */
  reshape?: ReshapeFields;
}

export function checksum(buf: Buffer): number {
  const maxDev = buf.readUInt32LE(O.maxDev);
  let size = HEADER + 2 * maxDev;
  let sum = 0n;
  let at = 0;
  for (; size >= 4; size -= 4, at += 4) sum += BigInt(at === O.sbCsum ? 0 : buf.readUInt32LE(at));
  if (size === 2) sum += BigInt(buf.readUInt16LE(at));
  return Number(((sum & 0xffffffffn) + (sum >> 32n)) & 0xffffffffn);
}

export function encodeSuperblock(sb: Superblock): Buffer {
  if (sb.devRoles.length > MAX_MAX_DEV) throw new NbdraidError('EINVAL', 'superblock', 'too many devices');
  const b = Buffer.alloc(SB_BYTES);
  b.writeUInt32LE(SB_MAGIC, O.magic);
  b.writeUInt32LE(1, O.majorVersion);
  b.writeUInt32LE(sb.featureMap, O.featureMap);
  sb.setUuid.copy(b, O.setUuid, 0, 16);
  b.write(sb.name.slice(0, 32), O.setName, 32, 'utf8');
  b.writeBigUInt64LE(BigInt(sb.ctime) & TIME_MASK, O.ctime);
  b.writeUInt32LE(sb.level, O.level);
  b.writeUInt32LE(sb.layout, O.layout);
  b.writeBigUInt64LE(BigInt(sb.size), O.size);
  b.writeUInt32LE(sb.chunkSectors, O.chunksize);
  b.writeUInt32LE(sb.raidDisks, O.raidDisks);
  b.writeInt32LE(sb.bitmapOffset, O.bitmapOffset);
  if (sb.reshape) encodeReshape(b, sb.reshape);
  b.writeBigUInt64LE(BigInt(sb.dataOffset), O.dataOffset);
  b.writeBigUInt64LE(BigInt(sb.dataSize), O.dataSize);
  b.writeBigUInt64LE(BigInt(sb.superOffset), O.superOffset);
  b.writeBigUInt64LE(BigInt(sb.recoveryOffset), O.recoveryOffset);
  b.writeUInt32LE(sb.devNumber, O.devNumber);
  sb.deviceUuid.copy(b, O.deviceUuid, 0, 16);
  sb.badBlockLog.copy(b, O.badBlockLog, 0, 8);
  b.writeBigUInt64LE(BigInt(sb.utime) & TIME_MASK, O.utime);
  b.writeBigUInt64LE(BigInt(sb.events), O.events);
  b.writeBigUInt64LE(sb.resyncOffset, O.resyncOffset);
  b.writeUInt32LE(sb.devRoles.length, O.maxDev);
  sb.devRoles.forEach((r, i) => b.writeUInt16LE(r, O.devRoles + 2 * i));
  b.writeUInt32LE(checksum(b), O.sbCsum);
  return b;
}

/** Decodes and validates a superblock read from SB_OFFSET; throws EINVAL with the reason. */
export function decodeSuperblock(b: Buffer, ctx: string): Superblock {
  if (b.length < SB_BYTES) throw new NbdraidError('EINVAL', ctx, 'short superblock read');
  const magic = b.readUInt32LE(O.magic);
  if (magic !== SB_MAGIC) {
    throw new NbdraidError('EINVAL', ctx, `no md superblock (magic ${hex(magic)}, expected ${hex(SB_MAGIC)})`);
  }
  const major = b.readUInt32LE(O.majorVersion);
  if (major !== 1) throw new NbdraidError('EINVAL', ctx, `md superblock major version ${major}, only 1 is supported`);
  const maxDev = b.readUInt32LE(O.maxDev);
  if (maxDev > MAX_MAX_DEV) throw new NbdraidError('EINVAL', ctx, `md superblock max_dev ${maxDev} is too large`);
  const stored = b.readUInt32LE(O.sbCsum);
  const computed = checksum(b);
  if (stored !== computed) {
    throw new NbdraidError('EINVAL', ctx, `md superblock checksum ${hex(stored)} is wrong (expected ${hex(computed)})`);
  }
  const superOffset = num(b, O.superOffset);
  if (superOffset !== SB_OFFSET_SECTORS) {
    throw new NbdraidError('EINVAL', ctx, `md superblock at sector 8 says super_offset ${superOffset}: not v1.2`);
  }
  return {
    featureMap: b.readUInt32LE(O.featureMap),
    setUuid: Buffer.from(b.subarray(O.setUuid, O.setUuid + 16)),
    name: cString(b.subarray(O.setName, O.setName + 32)),
    ctime: Number(b.readBigUInt64LE(O.ctime) & TIME_MASK),
    level: b.readInt32LE(O.level),
    layout: b.readUInt32LE(O.layout),
    size: num(b, O.size),
    chunkSectors: b.readUInt32LE(O.chunksize),
    raidDisks: b.readUInt32LE(O.raidDisks),
    bitmapOffset: b.readInt32LE(O.bitmapOffset),
    dataOffset: num(b, O.dataOffset),
    dataSize: num(b, O.dataSize),
    superOffset,
    recoveryOffset: num(b, O.recoveryOffset),
    devNumber: b.readUInt32LE(O.devNumber),
    deviceUuid: Buffer.from(b.subarray(O.deviceUuid, O.deviceUuid + 16)),
    badBlockLog: Buffer.from(b.subarray(O.badBlockLog, O.badBlockLog + 8)),
    utime: Number(b.readBigUInt64LE(O.utime) & TIME_MASK),
    events: num(b, O.events),
    resyncOffset: b.readBigUInt64LE(O.resyncOffset),
    devRoles: Array.from({ length: maxDev }, (_, i) => b.readUInt16LE(O.devRoles + 2 * i)),
    ...(b.readUInt32LE(O.featureMap) & FEATURE_RESHAPE_ACTIVE ? { reshape: decodeReshape(b) } : {}),
  };
}

function encodeReshape(b: Buffer, r: ReshapeFields): void {
  b.writeUInt32LE(r.newLevel, O.newLevel);
  b.writeBigUInt64LE(BigInt(r.position), O.reshapePosition);
  b.writeInt32LE(r.deltaDisks, O.deltaDisks);
  b.writeUInt32LE(r.newLayout, O.newLayout);
  b.writeUInt32LE(r.newChunkSectors, O.newChunk);
  b.writeInt32LE(r.newOffset, O.newOffset);
}

function decodeReshape(b: Buffer): ReshapeFields {
  return {
    newLevel: b.readInt32LE(O.newLevel),
    position: num(b, O.reshapePosition),
    deltaDisks: b.readInt32LE(O.deltaDisks),
    newLayout: b.readUInt32LE(O.newLayout),
    newChunkSectors: b.readUInt32LE(O.newChunk),
    newOffset: b.readInt32LE(O.newOffset),
  };
}

/** md's UUID text form: 8:8:8:8 hex digits. */
export function formatUuid(u: Buffer): string {
  const h = u.toString('hex');
  return `${h.slice(0, 8)}:${h.slice(8, 16)}:${h.slice(16, 24)}:${h.slice(24, 32)}`;
}

export function parseUuid(text: string): Buffer {
  const h = text.replace(/[:-]/g, '');
  if (!/^[0-9a-f]{32}$/i.test(h)) throw new NbdraidError('EINVAL', 'uuid', `malformed uuid "${text}"`);
  return Buffer.from(h, 'hex');
}

export function isClean(sb: Superblock): boolean {
  return sb.resyncOffset === MAX_SECTOR;
}

/** md's freshness rule: a member at the reference's events or one less missed no update. */
export function isFresh(sb: Superblock, refEvents: number): boolean {
  return sb.events + 1 >= refEvents;
}

/** The member is being rebuilt: its recovery offset says how far. */
export function isRecovering(sb: Superblock): boolean {
  return (sb.featureMap & FEATURE_RECOVERY_OFFSET) !== 0;
}

function num(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NbdraidError('EINVAL', 'superblock', `field at ${at} out of range`);
  return Number(v);
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}
