// Shared by the array verbs: the registry of the state directory, member paths as recorded, and
// the md-like status lines (records and live state come from lib/controller/array-admin.ts).
import path from 'node:path';
import type { LiveState } from '../../lib/controller/array-admin.js';
import { type AdminStore, openAdminStore } from '../../lib/coordination/admin.js';
import { coordinationTarget, describeTarget } from '../../lib/coordination/target.js';
import { memberLocation } from '../../lib/raid/members.js';

/** The global options every verb gets (cmd/nbdraid.ts): where the coordination object lives. */
export interface StateArgs { state: string; coordination?: string; deadAfter?: number }

/** Runs `fn` with the coordination object of the run (--coordination, else --state), closing it afterwards. */
export async function withStore<T>(args: StateArgs, fn: (store: AdminStore) => Promise<T>): Promise<T> {
  const target = coordinationTarget(args.state, args.coordination, args.deadAfter === undefined ? undefined : args.deadAfter * 1000);
  const store = await openAdminStore(target);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** What a read verb says when the coordination object records no array: the members may still hold some. */
export function noArrays(args: StateArgs): string {
  const target = coordinationTarget(args.state, args.coordination);
  const where = target.kind === 'sqlite' ? `the state directory ${args.state}` : describeTarget(target);
  return `nbdraid: no arrays: ${where} knows no arrays; arrays on members are found with `
    + `'nbdraid examine MEMBER...' and recorded here with 'nbdraid assemble NAME MEMBER...'; a new one is made with 'nbdraid create NAME MEMBER... --size 1G'`;
}

/** Members as recorded: local paths made absolute, NBD URIs as given. */
export function absolute(paths: string[]): string[] {
  return paths.map(memberLocation);
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
