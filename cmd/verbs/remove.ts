// `nbdraid remove NAME --member N`: remove a faulty member from the array.
import type { Argv, CommandModule } from 'yargs';
import { type StateArgs, withStore } from './array-common.js';
import { type ChangeArgs, changeMember } from '../../lib/controller/array-admin.js';

type Args = StateArgs & ChangeArgs;

export const removeCommand: CommandModule<StateArgs, Args> = {
  command: 'remove <name>',
  describe: 'remove a faulty member from the array',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', demandOption: true })
    .option('member', { type: 'number', demandOption: true, describe: 'slot number of the member' })
    .option('force', { type: 'boolean', default: false, describe: 'even when it takes the array offline' }) as unknown as Argv<Args>,
  handler: async (args) => {
    const msg = await withStore(args, (reg) => changeMember(reg, args.state, args, 'remove'));
    process.stdout.write(`nbdraid: ${args.name}: ${msg}\n`);
  },
};
