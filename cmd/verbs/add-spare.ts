// `nbdraid add-spare NAME DEV [--size SIZE]`: a spare that a controller rebuilds onto when a member fails.
import type { Argv, CommandModule } from 'yargs';
import { type StateArgs, withStore } from './array-common.js';
import { parseSize } from '../../lib/raid/units.js';
import { prepareSpare, recordSpare } from '../../lib/controller/array-admin.js';

interface Args extends StateArgs { name: string; device: string; size?: string; force: boolean }

export const addSpareCommand: CommandModule<StateArgs, Args> = {
  command: 'add-spare <name> <device>',
  describe: 'add a spare device; a controller rebuilds onto it when a member fails (at once if the array is degraded)',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', demandOption: true, describe: 'array name' })
    .positional('device', { type: 'string', demandOption: true, describe: 'file or block device' })
    .option('size', { type: 'string', describe: 'create the file, sparse, of this size when it does not exist' })
    .option('force', { type: 'boolean', default: false, describe: "overwrite another array's superblock on the device" }) as unknown as Argv<Args>,
  handler: async (args) => {
    await withStore(args, async (reg) => {
      const rec = await reg.requireArray(args.name);
      const size = args.size === undefined ? undefined : parseSize(args.size, '--size');
      const p = await prepareSpare(rec, { ...args, size }, `add-spare ${args.name}`);
      await recordSpare(reg, args.name, p, null);
      process.stdout.write(`nbdraid: ${args.name}: ${p} added as a spare\n`);
    });
  },
};
