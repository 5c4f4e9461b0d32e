// Shared by the array verbs: the registry of the state directory, registry records built from
// assembled metadata, and the array's live state read from its members' superblocks.
import path from 'node:path';
import { ArrayRegistry, type ArrayRecord, type MemberRecord, type MemberState } from '../../lib/coordination/arrays.js';
import { type Database, openDatabase } from '../../lib/coordination/db.js';
import type { AssembleResult, MemberReport } from '../../lib/raid/assemble.js';
import { memberInUse, memberLocation, openMemberDevice } from '../../lib/raid/members.js';
import { type ArrayMetadata, probeSuperblock } from '../../lib/raid/metadata.js';
import { ROLE_FAULTY, type Superblock, formatUuid, isClean } from '../../lib/raid/superblock.js';
import type { BlockDevice } from '../../lib/transport/block-device.js';

export interface StateArgs { state: string }

/** Runs `fn` with the array registry of `stateDir`, closing the database afterwards. */
export async function withRegistry<T>(stateDir: string, fn: (reg: ArrayRegistry, db: Database) => Promise<T>): Promise<T> {
  const db = openDatabase(stateDir);
  try {
    return await fn(new ArrayRegistry(db, { actor: 'cli' }), db);
  } finally {
    db.close();
  }
}

/** What a read verb says when the state directory records no array: the members may still hold some. */
export function noArrays(stateDir: string): string {
  return `nbdraid: no arrays: the state directory ${stateDir} knows no arrays; arrays on members are found with `
    + `'nbdraid examine MEMBER...' and recorded here with 'nbdraid assemble NAME MEMBER...'; a new one is made with 'nbdraid create NAME MEMBER... --size 1G'`;
}

/** Members as recorded: local paths made absolute, NBD URIs as given. */
export function absolute(paths: string[]): string[] {
  return paths.map(memberLocation);
}

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
    const fresh = sb.events + 1 >= ref.events && role < ref.raidDisks;
    const recovering = (sb.featureMap & 2) !== 0;
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

/** md-like lines: "nbdraid: NAME : active raid5 m0[0] ...", blocks, [n/m] [UU_U], state. */
export function formatStatus(s: LiveState): string {
  const mark: Record<string, string> = { faulty: '(F)', rebuilding: '(R)', spare: '(S)', missing: '(?)' };
  const members = s.members.map((m) => `${path.basename(m.path)}[${m.slot ?? '-'}]${mark[m.state] ?? ''}`);
  const algorithm = ['left-asymmetric', 'right-asymmetric', 'left-symmetric', 'right-symmetric'].indexOf(s.layout);
  return [
    `nbdraid: ${s.name} : ${s.state === 'offline' ? 'inactive' : 'active'} raid${s.level} ${members.join(' ')}`,
    `      ${s.size / 1024} blocks super 1.2 level ${s.level}, ${s.chunk / 1024}k chunk, algorithm ${algorithm} [${s.raidDisks}/${s.activeDisks}] [${s.slots}]`,
    `      state: ${s.state}, events: ${s.events}, served: ${s.served ? 'yes' : 'no'}, uuid: ${s.uuid}`,
  ].join('\n');
}
