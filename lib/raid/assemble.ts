// Assembling an array from its members, as mdadm does: the in-sync member with the highest events
// is the reference; members with the same events or one less are accepted; older ones are stale.
// A member the reference records as faulty or spare takes no slot. More than one missing slot, or a
// dirty array missing one, is refused unless forced; force brings in the freshest stale members.
import { NbdraidError } from '../errors.js';
import type { BlockDevice } from '../transport/block-device.js';
import { ArrayMetadata, type MdState, type MemberDisk, readSuperblock } from './metadata.js';
import { describeReshape, reshapeFromSuperblock } from './reshape-fields.js';
import {
  FEATURE_BITMAP_OFFSET, ROLE_FAULTY, ROLE_SPARE, type Superblock, formatUuid, isClean, isFresh, isRecovering, unsupportedFeatures,
} from './superblock.js';

export interface AssembleMember {
  device: BlockDevice;
  path?: string;
}

export type MemberVerdict = 'active' | 'rebuilding' | 'stale' | 'faulty' | 'spare' | 'forced';

export interface MemberReport {
  path: string;
  devNumber: number;
  /** Slot it serves in the assembled array, null when none. */
  slot: number | null;
  /** Slot its own superblock names (where it belongs, even when stale or faulty). */
  ownSlot: number | null;
  events: number;
  verdict: MemberVerdict;
  reason?: string;
}

export interface AssembleResult {
  meta: ArrayMetadata;
  report: MemberReport[];
  /** Slots without a member. */
  missing: number[];
  /** What the members' superblocks hold now (the freshest one's view), and at which events. */
  onDisk: { events: number; state: MdState };
  /** Assembly itself wrote the superblocks (forced members, or a forced dirty degraded start). */
  wrote: boolean;
  /** Devices the freshest superblock puts in a slot that were not given to assemble. */
  absent: { devNumber: number; slot: number; deviceUuid: Buffer }[];
}

interface Candidate { m: AssembleMember; sb: Superblock; label: string }

export async function assembleArray(members: AssembleMember[], opts: { force?: boolean; name?: string } = {}): Promise<AssembleResult> {
  const ctx = `assemble${opts.name ? ` ${opts.name}` : ''}`;
  if (members.length === 0) throw new NbdraidError('EINVAL', ctx, 'name the members to assemble');
  const cands = await Promise.all(members.map(async (m, i): Promise<Candidate> => {
    const label = m.path ?? `member ${i}`;
    return { m, label, sb: await readSuperblock(m.device, label) };
  }));
  const ref = checkSameArray(cands, ctx);
  const report: MemberReport[] = [];
  const chosen = new Map<number, Candidate>(); // slot -> member
  const stale: Candidate[] = [];
  for (const c of cands) classify(c, ref.sb, chosen, stale, report, ctx);
  const missing = () => range(ref.sb.raidDisks).filter((s) => !chosen.has(s));
  if (missing().length > 1 && opts.force) forceStale(ref.sb, stale, missing(), chosen, report);
  refuseUnstartable(ref.sb, missing(), report, ctx, !!opts.force);
  const meta = buildMetadata(ref.sb, cands, chosen);
  const forced = report.some((r) => r.verdict === 'forced');
  let onDisk = { events: ref.sb.events, state: stateOnDisk(ref.sb, cands) };
  if (forced || (!isClean(ref.sb) && missing().length > 0)) {
    const failed = await meta.commit(); // forced members now carry the current events
    if (failed.length > 0) throw new NbdraidError('EIO', ctx, `could not update superblocks of ${failed.map((d) => d.path).join(', ')}`);
    onDisk = { events: meta.events, state: meta.mdState() };
  }
  const given = new Set(cands.map((c) => c.sb.devNumber));
  const absent = meta.disks.filter((d) => !given.has(d.devNumber) && ref.sb.devRoles[d.devNumber] < ref.sb.raidDisks)
    .map((d) => ({ devNumber: d.devNumber, slot: ref.sb.devRoles[d.devNumber], deviceUuid: d.deviceUuid }));
  return { meta, report, missing: missing(), onDisk, absent, wrote: onDisk.events !== ref.sb.events };
}

/** The freshest superblock's view in canonical form (recovery offsets from the members' own). */
function stateOnDisk(ref: Superblock, cands: Candidate[]): MdState {
  const own = new Map(cands.map((c) => [c.sb.devNumber, c.sb]));
  const roles: [number, number][] = [];
  const recovery: [number, number][] = [];
  ref.devRoles.forEach((role, dev) => {
    if (role === ROLE_SPARE) return;
    roles.push([dev, role]);
    const sb = own.get(dev);
    if (role < ref.raidDisks && sb && isRecovering(sb)) recovery.push([dev, sb.recoveryOffset]);
  });
  return { clean: isClean(ref), roles, recovery };
}

function checkSameArray(cands: Candidate[], ctx: string): Candidate {
  const ref = cands.reduce((a, b) => (b.sb.events > a.sb.events ? b : a));
  for (const c of cands) {
    if (!c.sb.setUuid.equals(ref.sb.setUuid)) {
      throw new NbdraidError('EINVAL', ctx, `${c.label} belongs to another array (uuid ${formatUuid(c.sb.setUuid)}, not ${formatUuid(ref.sb.setUuid)}); leave it out`);
    }
    if (c.sb.level !== 5) throw new NbdraidError('ENOTSUP', ctx, `${c.label} is raid level ${c.sb.level}; only raid5 is supported`);
    refuseMigration(c, ctx);
    const unknown = unsupportedFeatures(c.sb.featureMap);
    if (unknown.length > 0) {
      throw new NbdraidError('ENOTSUP', ctx, `${c.label} uses md features nbdraid does not implement (${unknown.join(', ')}); assemble it with mdadm, or finish the operation there first`);
    }
    if (c.sb.size * 512 + c.sb.dataOffset * 512 > c.m.device.size) {
      throw new NbdraidError('EINVAL', ctx, `${c.label} is smaller than its superblock says (truncated device?)`);
    }
  }
  const devs = new Set<number>();
  for (const c of cands) {
    if (devs.has(c.sb.devNumber)) throw new NbdraidError('EINVAL', ctx, `${c.label} is listed twice (device ${c.sb.devNumber})`);
    devs.add(c.sb.devNumber);
  }
  return ref;
}

/**
 * Members in the middle of a migration are not assembled until the migration engine resumes
 * one: served in either geometry alone they would be misread.
 */
function refuseMigration(c: Candidate, ctx: string): void {
  const m = reshapeFromSuperblock(c.sb);
  if (!m) return;
  throw new NbdraidError('ENOTSUP', ctx, `${c.label}: a migration is in progress (${describeReshape(c.sb)}); nbdraid cannot resume a migration yet, and serving either geometry alone would misread the data: leave the members as they are (do not create over them) and continue it with mdadm --assemble, or assemble them again with a version of nbdraid that resumes migrations`);
}

function classify(c: Candidate, ref: Superblock, chosen: Map<number, Candidate>, stale: Candidate[], report: MemberReport[], ctx: string): void {
  const role = ref.devRoles[c.sb.devNumber] ?? ROLE_SPARE;
  const own = c.sb.devRoles[c.sb.devNumber];
  const entry: MemberReport = {
    path: c.label, devNumber: c.sb.devNumber, slot: null, ownSlot: own < c.sb.raidDisks ? own : null, events: c.sb.events, verdict: 'active',
  };
  report.push(entry);
  if (role === ROLE_FAULTY || role === ROLE_SPARE) {
    entry.verdict = role === ROLE_FAULTY ? 'faulty' : 'spare';
    entry.reason = role === ROLE_FAULTY ? 'marked faulty in the freshest superblock; re-add it by rebuild' : 'a spare';
    if (role === ROLE_FAULTY) stale.push(c);
    return;
  }
  if (role >= ref.raidDisks) throw new NbdraidError('EINVAL', ctx, `${c.label} claims slot ${role} of a ${ref.raidDisks}-member array`);
  if (!isFresh(c.sb, ref.events)) {
    entry.verdict = 'stale';
    entry.reason = `events ${c.sb.events} older than ${ref.events}: it missed updates while out of the array`;
    stale.push(c);
    return;
  }
  entry.slot = role;
  if (isRecovering(c.sb)) entry.verdict = 'rebuilding';
  chosen.set(role, c);
}

/**
 * Brings stale members back into their own slots while more than one slot is empty: first those
 * merely behind (not recorded faulty), freshest first.
 */
function forceStale(ref: Superblock, stale: Candidate[], missing: number[], chosen: Map<number, Candidate>, report: MemberReport[]): void {
  const failed = (c: Candidate) => (ref.devRoles[c.sb.devNumber] === ROLE_FAULTY ? 1 : 0);
  const bySlot = stale
    .filter((c) => c.sb.devRoles[c.sb.devNumber] < c.sb.raidDisks && missing.includes(c.sb.devRoles[c.sb.devNumber]))
    .sort((a, b) => failed(a) - failed(b) || b.sb.events - a.sb.events);
  let empty = missing.length;
  for (const c of bySlot) {
    if (empty <= 1) break;
    const slot = c.sb.devRoles[c.sb.devNumber];
    if (chosen.has(slot)) continue;
    chosen.set(slot, c);
    empty--;
    const r = report.find((x) => x.devNumber === c.sb.devNumber) as MemberReport;
    r.verdict = 'forced';
    r.slot = slot;
    r.reason = `forced in: events ${c.sb.events} raised to the array's; data written meanwhile may be inconsistent`;
  }
}

function refuseUnstartable(ref: Superblock, missing: number[], report: MemberReport[], ctx: string, force: boolean): void {
  const why = report.filter((r) => r.reason).map((r) => `${r.path}: ${r.reason}`).join('; ');
  if (missing.length > 1) {
    throw new NbdraidError('EIO', ctx, `only ${ref.raidDisks - missing.length} of ${ref.raidDisks} members usable, slots ${missing.join(', ')} missing${why ? ` (${why})` : ''}; RAID-5 needs ${ref.raidDisks - 1}${force ? '' : '; --force may bring stale members back'}`);
  }
  if (missing.length === 1 && !isClean(ref) && !force) {
    throw new NbdraidError('EIO', ctx, `array is dirty (not shut down cleanly) and degraded (slot ${missing[0]} missing${why ? `: ${why}` : ''}): data may be inconsistent (write hole); pass --force to start it anyway`);
  }
}

function buildMetadata(ref: Superblock, cands: Candidate[], chosen: Map<number, Candidate>): ArrayMetadata {
  const inSlot = new Map([...chosen.entries()].map(([slot, c]) => [c.sb.devNumber, slot]));
  const byDev = new Map(cands.map((c) => [c.sb.devNumber, c]));
  const disks: MemberDisk[] = ref.devRoles.map((refRole, devNumber): MemberDisk => {
    const c = byDev.get(devNumber);
    const slot = inSlot.get(devNumber);
    const role = slot ?? (refRole < ref.raidDisks ? ROLE_FAULTY : refRole);
    const recovering = c && slot !== undefined && isRecovering(c.sb);
    return {
      devNumber, deviceUuid: c?.sb.deviceUuid ?? Buffer.alloc(16), role,
      device: slot !== undefined && c ? c.m.device : null, path: c?.m.path,
      dataSize: c?.sb.dataSize ?? ref.size, recoveryOffset: recovering ? c.sb.recoveryOffset : undefined,
      badBlockLog: c?.sb.badBlockLog,
    };
  });
  return new ArrayMetadata(
    {
      uuid: ref.setUuid, name: ref.name, ctime: ref.ctime, layout: ref.layout, chunkSectors: ref.chunkSectors,
      raidDisks: ref.raidDisks, sizeSectors: ref.size, dataOffsetSectors: ref.dataOffset,
      bitmap: ref.featureMap & FEATURE_BITMAP_OFFSET ? { offsetSectors: ref.bitmapOffset } : undefined,
    },
    disks, ref.events, isClean(ref),
  );
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
