// Volumes over MemoryDevices for the raid tests, and a flat reference buffer to compare against.
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import type { BlockDevice } from '../../lib/transport/block-device.js';
import path from 'node:path';
import { type CreateOptions, createArray } from '../../lib/raid/create.js';
import { closeMembers, createSparseMember, openMembers } from '../../lib/raid/members.js';
import type { LayoutName } from '../../lib/raid/geometry.js';
import { ArrayMetadata } from '../../lib/raid/metadata.js';
import { RaidVolume, type RaidVolumeOptions } from '../../lib/raid/volume.js';
import { FaultDevice } from '../../lib/transport/fault-device.js';
import { randomBytes } from '../helpers/prng.js';
import { tempDir } from '../helpers/temp-dir.js';

export const DATA_OFFSET = 8192;

export interface Fixture {
  meta: ArrayMetadata;
  devices: BlockDevice[];
}

export async function memoryArray(n: number, chunk: number, layout: LayoutName, stripes: number,
  wrap: (d: MemoryDevice, i: number) => BlockDevice = (d) => d): Promise<Fixture> {
  const devices = Array.from({ length: n }, (_, i) => wrap(new MemoryDevice(DATA_OFFSET + stripes * chunk), i));
  const meta = await createArray(devices.map((device) => ({ device })), { name: 'prop', chunk, layout, dataOffset: DATA_OFFSET });
  return { meta, devices };
}

/** A second view of the same members with `slot` left out (as if it were missing). */
export function withoutSlot(meta: ArrayMetadata, slot: number): ArrayMetadata {
  return new ArrayMetadata(meta.info, meta.disks.map((d) => (d.role === slot ? { ...d, device: null } : { ...d })), meta.events, meta.clean);
}

export function quietVolume(meta: ArrayMetadata, opts: RaidVolumeOptions = {}): RaidVolume {
  const lines: string[] = [];
  return new RaidVolume(meta, { log: (l) => lines.push(l), cleanDelayMs: 20, ...opts });
}

export async function readAll(vol: BlockDevice): Promise<Buffer> {
  const out = Buffer.alloc(vol.size);
  await vol.read(0, out);
  return out;
}

/** An array whose members are FaultDevices over memory; members it fails and its log lines are kept. */
export async function faultyArray(n = 4, chunk = 16384, stripes = 16, volOpts: RaidVolumeOptions = {}) {
  const fx = await memoryArray(n, chunk, 'left-symmetric', stripes, (d, i) => new FaultDevice(d, `m${i}`));
  const faults = fx.devices as FaultDevice[];
  const logs: string[] = [];
  const failed: number[] = [];
  const vol = new RaidVolume(fx.meta, { log: (l) => logs.push(l), cleanDelayMs: 10, onMemberFailed: (s) => failed.push(s), ...volOpts });
  return { ...fx, faults, vol, logs, failed };
}

/** `count` random writes of 1..maxSectors sectors, mirrored into `ref`. */
export async function fill(vol: RaidVolume, ref: Buffer, rand: () => number, count: number, maxSectors: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const len = 512 * (1 + Math.floor(rand() * maxSectors));
    const off = Math.floor(rand() * (vol.size - len));
    const data = randomBytes(rand, len);
    await vol.write(off, data);
    data.copy(ref, off);
  }
}

/**
 * An array of `n` member files of `memberBytes` each in a fresh directory (plus `extra` files not
 * in the array, e.g. members to add), created through createArray; closed by close() or at teardown.
 */
export async function fileArray(t: Parameters<typeof tempDir>[0], n: number, memberBytes: number, opts: Omit<CreateOptions, 'name'> & { extra?: number } = {}) {
  const dir = tempDir(t, 'nbdraid-raid-');
  const paths = Array.from({ length: n + (opts.extra ?? 0) }, (_, i) => path.join(dir, `m${i}.img`));
  for (const p of paths) createSparseMember(p, memberBytes);
  const handles = await openMembers(paths);
  let closed: Promise<void> | undefined;
  /** Closes the members (and drops their locks) once; again at teardown is a no-op. */
  const close = () => (closed ??= closeMembers(handles));
  t.teardown(close);
  const meta = await createArray(handles.slice(0, n).map((h) => ({ device: h.device, path: h.path })), { name: 'mig', ...opts });
  return { dir, paths, handles, meta, close };
}
