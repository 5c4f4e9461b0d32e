// `nbdraid fail NAME --member N`: mark a member faulty (the array runs degraded).
import type { Argv, CommandModule } from 'yargs';
import { type StateArgs, withStore } from './array-common.js';
import { type ChangeArgs, changeMember } from '../../lib/controller/array-admin.js';

type Args = StateArgs & ChangeArgs;

export const failCommand: CommandModule<StateArgs, Args> = {
  command: 'fail <name>',
  describe: 'mark a member faulty (the array runs degraded)',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', demandOption: true })
    .option('member', { type: 'number', demandOption: true, describe: 'slot number of the member' })
    .option('force', { type: 'boolean', default: false, describe: 'even when it takes the array offline' }) as unknown as Argv<Args>,
  handler: async (args) => {
    const msg = await withStore(args, (reg) => changeMember(reg, args.state, args, 'fail'));
    process.stdout.write(`nbdraid: ${args.name}: ${msg}\n`);
  },
};
