// `nbdraid create NAME MEMBER... [--size SIZE] [--chunk 512K] [--layout left-symmetric] [--force]`
import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import { createArray } from '../../lib/raid/create.js';
import { DEFAULT_LAYOUT, parseLayout } from '../../lib/raid/geometry.js';
import { closeMembers, createSparseMember, memberExists, openMembers } from '../../lib/raid/members.js';
import { formatUuid } from '../../lib/raid/superblock.js';
import { formatSize, parseSize } from '../../lib/raid/units.js';
import { recordOf } from '../../lib/controller/array-admin.js';
import { type StateArgs, absolute, withRegistry } from './array-common.js';

interface CreateArgs extends StateArgs {
  name: string;
  members: string[];
  size?: string;
  chunk: string;
  layout: string;
  force: boolean;
  json: boolean;
}

async function create(args: CreateArgs): Promise<void> {
  const ctx = `create ${args.name}`;
  const chunk = parseSize(args.chunk, '--chunk');
  const layout = parseLayout(args.layout);
  const size = args.size !== undefined ? parseSize(args.size, '--size') : undefined;
  const paths = absolute(args.members);
  const twice = paths.find((p, i) => paths.indexOf(p) !== i);
  if (twice) throw new NbdraidError('EINVAL', ctx, `member ${twice} is listed twice`);
  const missing = paths.filter((p) => !memberExists(p));
  if (missing.length > 0 && size === undefined) {
    throw new NbdraidError('ENOENT', ctx, `no such member ${missing.join(', ')}; pass --size SIZE to create member files`);
  }
  await withRegistry(args.state, async (reg) => {
    if (reg.get(args.name)) throw new NbdraidError('EEXIST', ctx, `an array named ${args.name} exists; pick another name (nbdraid status lists arrays)`);
    const created = missing.filter((p) => createSparseMember(p, size as number));
    try {
      const handles = await openMembers(paths);
      try {
        const meta = await createArray(handles.map((h) => ({ device: h.device, path: h.path })), { name: args.name, chunk, layout, force: args.force });
        const report = meta.disks.map((d) => ({ path: d.path as string, devNumber: d.devNumber, slot: d.role, ownSlot: d.role, events: meta.events, verdict: 'active' as const }));
        const rec = reg.create(recordOf(args.name, meta, report));
        reg.recordWritten(args.name, meta.events, meta.mdState());
        const g = meta.geometry();
        if (args.json) process.stdout.write(`${JSON.stringify(rec, null, 2)}\n`);
        else process.stdout.write(`nbdraid: created ${args.name}: raid5, ${g.members} members, ${formatSize(g.chunk)} chunk, ${g.layout}, ${formatSize(g.size)} (${g.size} bytes) usable, uuid ${formatUuid(meta.info.uuid)}\n`);
      } finally {
        await closeMembers(handles);
      }
    } catch (err) {
      for (const p of created) fs.rmSync(p, { force: true }); // nothing changed on failure
      throw err;
    }
  });
}

export const createCommand: CommandModule<StateArgs, CreateArgs> = {
  command: 'create <name> <members..>',
  describe: 'create a RAID-5 array on member files or block devices (md v1.2 superblocks)',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', demandOption: true, describe: 'array name' })
    .positional('members', { type: 'string', array: true, demandOption: true, describe: 'member files or block devices (at least 3)' })
    .option('size', { type: 'string', describe: 'create missing member files, sparse, of this size (e.g. 1G)' })
    .option('chunk', { type: 'string', default: '512K', describe: 'chunk size, a power of two >= 4K' })
    .option('layout', { type: 'string', default: DEFAULT_LAYOUT, describe: 'left-symmetric, left-asymmetric, right-symmetric or right-asymmetric' })
    .option('force', { type: 'boolean', default: false, describe: 'overwrite members carrying an md superblock' })
    .option('json', { type: 'boolean', default: false, describe: 'print the registry record as JSON' }) as unknown as Argv<CreateArgs>,
  handler: create,
};
