// Adding a device to an array as a spare (add-spare, replace): checks that it can hold a member,
// is not in use and does not carry another array's superblock, then records it in the registry.
// A controller rebuilds onto it when a member fails (or, for replace, right away).
import type { ArrayRecord, ArrayRegistry } from '../../lib/coordination/index.js';
import { NbdraidError } from '../../lib/errors.js';
import { createSparseMember, memberExists, memberInUse, memberLocation, openMemberDevice } from '../../lib/raid/members.js';
import { newUuid, probeSuperblock } from '../../lib/raid/metadata.js';
import { formatUuid } from '../../lib/raid/superblock.js';

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
export function recordSpare(reg: ArrayRegistry, name: string, p: string, slot: number | null, also?: (r: ArrayRecord) => void): ArrayRecord {
  return reg.update(name, (r) => {
    r.members = r.members.filter((m) => !(m.path === p && m.state === 'removed'));
    r.members.push({ slot, path: p, state: 'spare', deviceUuid: formatUuid(newUuid()) });
    also?.(r);
  });
}
