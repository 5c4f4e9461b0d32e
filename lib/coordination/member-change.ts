// A member change as the record applies it: the volume's membership changes (failed, removed,
// rebuilding, recovered, rebuilt) are transactions on the array's record, which re-reads the latest
// record and refuses what it no longer allows. Several controllers racing conflicting changes get
// exactly one order; the loser's change is refused (ESTALE) and it re-reads, never overwrites.
import { NbdraidError } from '../errors.js';
import type { ArrayRecord, MemberRecord } from './arrays.js';

export type RecordedChange =
  | { kind: 'failed'; slot: number; path?: string; reason: string }
  | { kind: 'removed'; slot: number; path?: string }
  | { kind: 'rebuilding'; slot: number; path?: string }
  | { kind: 'recovered'; slot: number; path?: string; sectors: number }
  | { kind: 'rebuilt'; slot: number; path?: string };

/** Applies a member change to the record; idempotent, and ESTALE where the record moved on. */
export function applyMemberChange(r: ArrayRecord, c: RecordedChange): void {
  const m = r.members.find((x) => x.slot === c.slot && (c.path === undefined || x.path === c.path) && x.state !== 'spare' && x.state !== 'removed')
    ?? r.members.find((x) => x.slot === c.slot && x.path === c.path);
  const stale = (why: string) => new NbdraidError('ESTALE', `array ${r.name} slot ${c.slot}`, why);
  const describe = (x: MemberRecord | undefined) => (x ? `${x.path} is ${x.state}` : 'no such member in the record');
  switch (c.kind) {
    case 'failed':
      if (m && (m.state === 'active' || m.state === 'rebuilding')) {
        m.state = 'faulty';
        delete m.recoveryOffset;
      }
      return;
    case 'removed':
      if (m?.state === 'faulty') m.state = 'removed';
      return;
    case 'rebuilding':
      if (m?.state !== 'rebuilding') throw stale(`cannot rebuild onto it: ${describe(m)}`);
      return;
    case 'recovered':
      if (m?.state !== 'rebuilding') throw stale(`recovery progress not recorded: ${describe(m)}`);
      m.recoveryOffset = Math.max(m.recoveryOffset ?? 0, c.sectors);
      return;
    case 'rebuilt':
      if (m?.state === 'active') return;
      if (m?.state !== 'rebuilding') throw stale(`the rebuild cannot finish: ${describe(m)} (changed by another process first)`);
      m.state = 'active';
      delete m.recoveryOffset;
      return;
  }
}

/** The spare chosen to rebuild a slot onto (assignSpare). */
export interface AssignedSpare { path: string; deviceUuid: string; devNumber: number }

/**
 * Picks a spare for `slot` (one assigned to it first, else any) and makes it the slot's rebuilding
 * member, unless some member already rebuilds or there is no spare. The failed member in the slot
 * becomes removed; the spare gets the next device number, and a device absent from this slot is
 * gone for good. Returns the spare, or undefined when nothing changed.
 */
export function assignSpare(r: ArrayRecord, slot: number): AssignedSpare | undefined {
  if (r.members.some((m) => m.state === 'rebuilding')) return undefined;
  const spares = r.members.filter((m) => m.state === 'spare');
  const spare = spares.find((m) => m.slot === slot) ?? spares.find((m) => m.slot === null);
  if (!spare) return undefined;
  for (const m of r.members) if (m.slot === slot && m.state === 'faulty') m.state = 'removed';
  const numbers = [...r.members.map((m) => m.devNumber ?? -1), ...(r.md.absent ?? []).map((a) => a.devNumber)];
  spare.devNumber = Math.max(-1, ...numbers) + 1;
  r.md.absent = (r.md.absent ?? []).filter((a) => a.slot !== slot);
  spare.state = 'rebuilding';
  spare.slot = slot;
  spare.recoveryOffset = 0;
  return { path: spare.path, deviceUuid: spare.deviceUuid, devNumber: spare.devNumber };
}
