// `fail` and `remove` share this: check the request against the live state, then either hand it
// to the serving process (through the registry, which it watches) or, when nothing serves the
// array, apply it to the superblocks directly. Either way events rise on every live member.
import { NbdraidError } from '../../lib/errors.js';
import type { ArrayRegistry, ArrayRecord, MemberRecord } from '../../lib/coordination/arrays.js';
import { SuperblockWriter } from '../../lib/controller/superblock-writer.js';
import { closeMembers, memberExists, openMembers } from '../../lib/raid/members.js';
import { type LiveState, liveState, memberPaths } from './array-common.js';

export type Change = 'fail' | 'remove';

export interface ChangeArgs { name: string; member: number; force: boolean }

const CONFIRM_MS = 5000;

export async function changeMember(reg: ArrayRegistry, stateDir: string, args: ChangeArgs, change: Change): Promise<string> {
  const ctx = `${change} ${args.name}`;
  const rec = reg.require(args.name);
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
  await applyOffline(reg, stateDir, rec, () => reg.update(args.name, (r) => { setState(r, member, state); }));
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
async function applyOffline(reg: ArrayRegistry, stateDir: string, rec: ArrayRecord, change: () => void): Promise<void> {
  const handles = await openMembers(memberPaths(rec).filter(memberExists));
  try {
    change();
    await new SuperblockWriter(reg, stateDir, rec.name).sync();
  } finally {
    await closeMembers(handles);
  }
}

/** A server holds the members: record the wish and wait until its superblocks show it applied. */
async function handToServer(reg: ArrayRegistry, rec: ArrayRecord, member: MemberRecord, state: MemberRecord['state'], before: LiveState, ctx: string): Promise<string> {
  reg.update(rec.name, (r) => { setState(r, member, state); });
  const deadline = Date.now() + CONFIRM_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await liveState(reg.require(rec.name));
    if (state === 'faulty' && now.state === 'offline') {
      return `member ${member.slot} (${member.path}) marked faulty: the array is now OFFLINE; every request fails with EIO until it is re-assembled`;
    }
    const done = state === 'faulty' ? now.slots[member.slot as number] !== 'U' : now.events > before.events;
    if (done) return `member ${member.slot} (${member.path}) ${state === 'faulty' ? 'failed' : 'removed'} by the serving process; events ${now.events}`;
  }
  throw new NbdraidError('ETIMEDOUT', ctx, `recorded, but the serving process has not applied it within ${CONFIRM_MS / 1000} s; check it with 'nbdraid status ${rec.name}'`);
}
