// `nbdraid create NAME MEMBER... [--size SIZE] [--chunk 512K] [--layout left-symmetric] [--force]`
import type { Argv, CommandModule } from 'yargs';
import { checkCreateSpec, createAndRecord } from '../../lib/controller/array-admin.js';
import { DEFAULT_LAYOUT, parseLayout } from '../../lib/raid/geometry.js';
import { formatSize, parseSize } from '../../lib/raid/units.js';
import { type StateArgs, absolute, withStore } from './array-common.js';

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
  const spec = {
    name: args.name, paths: absolute(args.members), chunk: parseSize(args.chunk, '--chunk'), layout: parseLayout(args.layout),
    size: args.size !== undefined ? parseSize(args.size, '--size') : undefined, force: args.force,
  };
  checkCreateSpec(spec);
  const { rec, geometry: g, uuid } = await withStore(args, async (reg) => createAndRecord(reg, spec));
  if (args.json) process.stdout.write(`${JSON.stringify(rec, null, 2)}\n`);
  else process.stdout.write(`nbdraid: created ${args.name}: raid5, ${g.members} members, ${formatSize(g.chunk)} chunk, ${g.layout}, ${formatSize(g.size)} (${g.size} bytes) usable, uuid ${uuid}\n`);
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
