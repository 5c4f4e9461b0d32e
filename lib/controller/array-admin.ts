// The array administration door of the CLI verbs: arrays created or assembled and recorded,
// registry records built from assembled metadata, the array's live state derived from its members'
// superblocks as md would, member changes (fail, remove) handed to the serving process or written
// to the superblocks when nothing serves the array, and spares checked and recorded. cmd/ parses
// arguments and prints; the rules live here.
import fs from 'node:fs';
import type { AdminStore } from '../coordination/admin.js';
import type { ArrayRecord, MemberRecord, MemberState } from '../coordination/arrays.js';
import { NbdraidError } from '../errors.js';
import type { AssembleResult, MemberReport } from '../raid/assemble.js';
import { createArray } from '../raid/create.js';
import type { Geometry, LayoutName } from '../raid/geometry.js';
import {
  closeMembers, createSparseMember, memberExists, memberInUse, memberLocation, openMemberDevice, openMembers,
} from '../raid/members.js';
import { openArray } from '../raid/open.js';
import { regionStripes } from './plans.js';
import { type ArrayMetadata, newUuid, probeSuperblock } from '../raid/metadata.js';
import { ROLE_FAULTY, type Superblock, formatUuid, isClean, isFresh, isRecovering } from '../raid/superblock.js';
import type { BlockDevice } from '../transport/block-device.js';
import { SuperblockWriter } from './superblock-writer.js';

// ---- create and assemble ----

export interface CreateSpec { name: string; paths: string[]; size?: number; chunk: number; layout: LayoutName; force: boolean }

/** The member list's own faults (a path twice, missing files without a size), found before anything is opened. */
export function checkCreateSpec(spec: CreateSpec): void {
  const ctx = `create ${spec.name}`;
  const twice = spec.paths.find((p, i) => spec.paths.indexOf(p) !== i);
  if (twice) throw new NbdraidError('EINVAL', ctx, `member ${twice} is listed twice`);
  const missing = spec.paths.filter((p) => !memberExists(p));
  if (missing.length > 0 && spec.size === undefined) {
    throw new NbdraidError('ENOENT', ctx, `no such member ${missing.join(', ')}; pass --size SIZE to create member files`);
  }
}

/**
 * Writes a new array's superblocks to `paths` (creating missing member files sparse of `size`) and
 * records it; on any failure the files it created are removed and nothing is recorded.
 */
export async function createAndRecord(reg: AdminStore, spec: CreateSpec): Promise<{ rec: ArrayRecord; geometry: Geometry; uuid: string }> {
  checkCreateSpec(spec);
  const missing = spec.paths.filter((p) => !memberExists(p));
  if (await reg.getArray(spec.name)) throw new NbdraidError('EEXIST', `create ${spec.name}`, `an array named ${spec.name} exists; pick another name (nbdraid status lists arrays)`);
  const created = missing.filter((p) => createSparseMember(p, spec.size as number));
  try {
    const handles = await openMembers(spec.paths);
    try {
      const meta = await createArray(handles.map((h) => ({ device: h.device, path: h.path })), { name: spec.name, chunk: spec.chunk, layout: spec.layout, force: spec.force });
      const report = meta.disks.map((d) => ({ path: d.path as string, devNumber: d.devNumber, slot: d.role, ownSlot: d.role, events: meta.events, verdict: 'active' as const }));
      const rec = await reg.createArray(recordOf(spec.name, meta, report));
      await reg.recordWritten(spec.name, meta.events, meta.mdState());
      return { rec, geometry: meta.geometry(), uuid: formatUuid(meta.info.uuid) };
    } finally {
      await closeMembers(handles);
    }
  } catch (err) {
    for (const p of created) fs.rmSync(p, { force: true }); // nothing changed on failure
    throw err;
  }
}

export interface Assembled {
  array: ArrayRecord;
  report: MemberReport[];
  unopened: { path: string; reason: string }[];
  missing: number[];
  raidDisks: number;
}

/**
 * Assembles `paths` as mdadm --assemble does and records the array under `name`; an array not
 * shut down cleanly has every region marked for resync (nothing says where writes were in flight).
 */
export async function assembleAndRecord(reg: AdminStore, name: string, paths: string[], force: boolean): Promise<Assembled> {
  const ctx = `assemble ${name}`;
  const existing = await reg.getArray(name);
  const opened = await openArray(paths, { name, force });
  try {
    const uuid = formatUuid(opened.meta.info.uuid);
    if (existing && existing.uuid !== uuid) {
      throw new NbdraidError('EEXIST', ctx, `the registered array ${name} has uuid ${existing.uuid}, these members belong to ${uuid}; assemble them under another name`);
    }
    const other = (await reg.listArrays()).find((r) => r.uuid === uuid && r.name !== name);
    if (other) throw new NbdraidError('EEXIST', ctx, `these members are already registered as array ${other.name}; assemble them under that name`);
    const rec = recordOf(name, opened.meta, opened.report, opened.absent);
    for (const u of opened.unopened) rec.members.push({ slot: null, path: u.path, state: 'faulty', deviceUuid: '' });
    const array = existing ? await reg.updateArray(name, (r) => Object.assign(r, rec)) : await reg.createArray(rec);
    await reg.recordWritten(name, opened.onDisk.events, opened.onDisk.state);
    if (!opened.onDisk.state.clean) await reg.requireResync(name, regionsOf(opened.meta.geometry()));
    return { array, report: opened.report, unopened: opened.unopened, missing: opened.missing, raidDisks: opened.meta.info.raidDisks };
  } finally {
    await opened.close();
  }
}

function regionsOf(g: Geometry): number[] {
  return Array.from({ length: Math.ceil(g.stripes / regionStripes(g)) }, (_, i) => i);
}

// ---- records and live state ----

const VERDICT_STATE: Record<MemberReport['verdict'], MemberState> = {
  active: 'active', forced: 'active', rebuilding: 'rebuilding', stale: 'faulty', faulty: 'faulty', spare: 'spare',
};

/** The registry's view of an assembled array: everything its superblocks are written from. */
export function recordOf(name: string, meta: ArrayMetadata, report: MemberReport[],
  absent: AssembleResult['absent'] = []): Omit<ArrayRecord, 'revision' | 'createdAt' | 'updatedAt' | 'throttle'> {
  const g = meta.geometry();
  const members: MemberRecord[] = report.map((r) => {
    const disk = meta.disks.find((d) => d.devNumber === r.devNumber);
    const m: MemberRecord = {
      slot: r.slot ?? r.ownSlot, path: r.path, state: VERDICT_STATE[r.verdict],
      deviceUuid: formatUuid(disk?.deviceUuid ?? Buffer.alloc(16)), devNumber: r.devNumber,
    };
    if (m.state === 'rebuilding') m.recoveryOffset = disk?.recoveryOffset ?? 0;
    return m;
  });
  return {
    name, uuid: formatUuid(meta.info.uuid), level: 5, layout: g.layout, chunk: g.chunk, raidDisks: g.members,
    dataOffset: g.dataOffset, memberSize: g.stripes * g.chunk, members,
    md: {
      setName: meta.info.name, ctime: meta.info.ctime, bitmapOffset: meta.info.bitmap?.offsetSectors,
      absent: absent.map((a) => ({ devNumber: a.devNumber, slot: a.slot, deviceUuid: formatUuid(a.deviceUuid) })),
    },
  };
}

/** Paths of the members a record still counts (not removed). */
export function memberPaths(rec: ArrayRecord): string[] {
  return rec.members.filter((m) => m.state !== 'removed').map((m) => m.path);
}

export interface LiveMember { path: string; slot: number | null; events: number | null; state: string }

export interface LiveState {
  name: string;
  uuid: string;
  level: number;
  layout: string;
  chunk: number;
  raidDisks: number;
  activeDisks: number;
  /** md's [UU_U]. */
  slots: string;
  state: 'clean' | 'active' | 'degraded' | 'offline';
  clean: boolean;
  events: number;
  served: boolean;
  /** Volume size in bytes. */
  size: number;
  members: LiveMember[];
}

/** Reads every member's superblock (read-only, no lock) and derives the array's state as md would. */
export async function liveState(rec: ArrayRecord): Promise<LiveState> {
  const paths = memberPaths(rec);
  const sbs = await Promise.all(paths.map(readQuietly));
  const ours = sbs.filter((s): s is Superblock => !!s && formatUuid(s.setUuid) === rec.uuid);
  const ref = ours.reduce<Superblock | undefined>((a, b) => (!a || b.events > a.events ? b : a), undefined);
  const inSync = new Set<number>();
  const members: LiveMember[] = paths.map((p, i) => {
    const sb = sbs[i];
    const regState = rec.members.find((m) => m.path === p)?.state ?? 'active';
    // A spare gets the set's superblock only when a rebuild takes it.
    if (regState === 'spare' && (!sb || formatUuid(sb.setUuid) !== rec.uuid)) return { path: p, slot: null, events: null, state: 'spare' };
    if (!sb || !ref || formatUuid(sb.setUuid) !== rec.uuid) return { path: p, slot: null, events: null, state: 'missing' };
    const role = ref.devRoles[sb.devNumber];
    const fresh = isFresh(sb, ref.events) && role < ref.raidDisks;
    const recovering = isRecovering(sb);
    if (fresh && !recovering) inSync.add(role);
    const state = role === ROLE_FAULTY || !fresh ? 'faulty' : recovering ? 'rebuilding' : regState === 'faulty' ? 'faulty' : 'active';
    const own = sb.devRoles[sb.devNumber];
    return { path: p, slot: own < rec.raidDisks ? own : null, events: sb.events, state };
  });
  const n = rec.raidDisks;
  const slots = Array.from({ length: n }, (_, s) => (inSync.has(s) ? 'U' : '_')).join('');
  const clean = ref ? isClean(ref) : false;
  // A slot the registry holds faulty (and no one active) is out even where its superblock, not
  // yet updated or never to be (the array went offline), still says otherwise.
  const regOut = (s: number) => rec.members.some((m) => m.slot === s && m.state === 'faulty')
    && !rec.members.some((m) => m.slot === s && m.state === 'active');
  const missing = Array.from({ length: n }, (_, s) => s).filter((s) => !inSync.has(s) || regOut(s)).length;
  return {
    name: rec.name, uuid: rec.uuid, level: rec.level, layout: rec.layout, chunk: rec.chunk, raidDisks: n,
    activeDisks: inSync.size, slots, clean, events: ref?.events ?? 0,
    state: missing > 1 ? 'offline' : missing === 1 ? 'degraded' : clean ? 'clean' : 'active',
    served: paths.some((p) => memberInUse(p)), size: (rec.memberSize * (n - 1)), members,
  };
}

async function readQuietly(p: string): Promise<Superblock | undefined> {
  let dev: BlockDevice | undefined;
  try {
    dev = await openMemberDevice(p, { readOnly: true });
    return await probeSuperblock(dev, p);
  } catch {
    return undefined;
  } finally {
    await dev?.close();
  }
}

// ---- member changes: fail, remove ----

export type Change = 'fail' | 'remove';

export interface ChangeArgs { name: string; member: number; force: boolean }

const CONFIRM_MS = 30_000;

export async function changeMember(reg: AdminStore, stateDir: string, args: ChangeArgs, change: Change): Promise<string> {
  const ctx = `${change} ${args.name}`;
  const rec = await reg.requireArray(args.name);
  const slot = args.member;
  if (!Number.isInteger(slot) || slot < 0 || slot >= rec.raidDisks) {
    throw new NbdraidError('EINVAL', ctx, `--member must be a slot number 0..${rec.raidDisks - 1}, got ${slot}`);
  }
  const member = rec.members.find((m) => m.slot === slot && m.state !== 'removed');
  if (!member) throw new NbdraidError('ENOENT', ctx, `no member in slot ${slot} (already removed?)`);
  const live = await liveState(rec);
  if (change === 'fail') {
    if (live.slots[slot] !== 'U') return `member ${slot} (${member.path}) is already faulty or missing`;
    if (live.activeDisks < rec.raidDisks && !args.force) {
      throw new NbdraidError('EBUSY', ctx, `the array is already degraded [${live.slots}]: failing slot ${slot} would take it offline; pass --force to do it anyway`);
    }
  } else if (live.slots[slot] === 'U' && member.state !== 'faulty') {
    throw new NbdraidError('EBUSY', ctx, `member ${slot} (${member.path}) is active; fail it first: nbdraid fail ${args.name} --member ${slot}`);
  }
  const state = change === 'fail' ? 'faulty' : 'removed';
  if (live.served) return handToServer(reg, rec, member, state, live, ctx);
  await applyOffline(reg, stateDir, rec, async () => { await reg.updateArray(args.name, (r) => { setState(r, member, state); }); });
  return `member ${slot} (${member.path}) ${change === 'fail' ? 'marked faulty' : 'removed'}; superblocks updated`;
}

function setState(r: ArrayRecord, member: MemberRecord, state: MemberRecord['state']): void {
  const m = r.members.find((x) => x.path === member.path);
  if (m) m.state = state;
}

/**
 * Nothing serves the array: under the member locks (so no server starts meanwhile) record the
 * change and let the one superblock writer bring the members up to the record.
 */
async function applyOffline(reg: AdminStore, stateDir: string, rec: ArrayRecord, change: () => Promise<void>): Promise<void> {
  const handles = await openMembers(memberPaths(rec).filter(memberExists));
  try {
    // The superblock writers' lock: the database's across hosts (PostgreSQL), else a file of
    // this host's state directory.
    if (!reg.lockSuperblocks) fs.mkdirSync(stateDir, { recursive: true });
    await change();
    await new SuperblockWriter(reg, reg.lockSuperblocks ?? stateDir, rec.name).sync();
  } finally {
    await closeMembers(handles);
  }
}

/** A server holds the members: record the wish and wait until its superblocks show it applied. */
async function handToServer(reg: AdminStore, rec: ArrayRecord, member: MemberRecord, state: MemberRecord['state'], before: LiveState, ctx: string): Promise<string> {
  await reg.updateArray(rec.name, (r) => { setState(r, member, state); });
  const deadline = Date.now() + CONFIRM_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await liveState(await reg.requireArray(rec.name));
    if (state === 'faulty' && now.state === 'offline') {
      return `member ${member.slot} (${member.path}) marked faulty: the array is now OFFLINE; every request fails with EIO until it is re-assembled`;
    }
    // Failed: the slot is out, or (a spare may already have been rebuilt into it) the newest
    // superblocks no longer hold this member in it; either way written after the wish.
    const out = now.slots[member.slot as number] !== 'U' || now.members.find((m) => m.path === member.path)?.state !== 'active';
    const done = state === 'faulty' ? out && now.events > before.events : now.events > before.events;
    if (done) return `member ${member.slot} (${member.path}) ${state === 'faulty' ? 'failed' : 'removed'} by the serving process; events ${now.events}`;
  }
  throw new NbdraidError('ETIMEDOUT', ctx, `recorded, but the serving process has not applied it within ${CONFIRM_MS / 1000} s; check it with 'nbdraid status ${rec.name}'`);
}

// ---- spares: add-spare, replace ----

export interface SpareArgs { name: string; device: string; size?: number; force: boolean }

/** Validates `device` as a spare for `rec`; creates it sparse when `size` is given and it is missing. */
export async function prepareSpare(rec: ArrayRecord, args: SpareArgs, ctx: string): Promise<string> {
  const p = memberLocation(args.device);
  if (rec.members.some((m) => m.path === p && m.state !== 'removed')) throw new NbdraidError('EEXIST', ctx, `${p} is already a member of ${rec.name}`);
  const need = rec.dataOffset + rec.memberSize;
  if (!memberExists(p)) {
    if (args.size === undefined) throw new NbdraidError('ENOENT', ctx, `no such device ${p}; pass --size SIZE to create a sparse file`);
    if (args.size < need) throw new NbdraidError('EINVAL', ctx, `--size must be at least ${need} bytes (data offset + member size)`);
    createSparseMember(p, args.size);
  }
  if (memberInUse(p)) throw new NbdraidError('EBUSY', ctx, `${p} is in use by another process; pick another device`);
  const dev = await openMemberDevice(p, { readOnly: true });
  try {
    if (dev.size < need) throw new NbdraidError('EINVAL', ctx, `${p} holds ${dev.size} bytes; a member of ${rec.name} needs at least ${need}`);
    const sb = await probeSuperblock(dev, p).catch(() => undefined);
    if (sb && formatUuid(sb.setUuid) !== rec.uuid && !args.force) {
      throw new NbdraidError('EBUSY', ctx, `${p} carries the superblock of array '${sb.name}' (uuid ${formatUuid(sb.setUuid)}); pass --force to overwrite it`);
    }
  } finally {
    await dev.close();
  }
  return p;
}

/** Records `p` as a spare (optionally meant for `slot`) in the same transaction as `also`. */
export function recordSpare(reg: AdminStore, name: string, p: string, slot: number | null, also?: (r: ArrayRecord) => void): Promise<ArrayRecord> {
  return reg.updateArray(name, (r) => {
    r.members = r.members.filter((m) => !(m.path === p && m.state === 'removed'));
    r.members.push({ slot, path: p, state: 'spare', deviceUuid: formatUuid(newUuid()) });
    also?.(r);
  });
}
