// `nbdraid status [NAME] [--json]`: md-like state of one or every registered array.
import type { Argv, CommandModule } from 'yargs';
import { type StateArgs, formatStatus, liveState, withRegistry } from './array-common.js';

interface StatusArgs extends StateArgs { name?: string; json: boolean }

async function status(args: StatusArgs): Promise<void> {
  await withRegistry(args.state, async (reg) => {
    const recs = args.name ? [reg.require(args.name)] : reg.list();
    const states = await Promise.all(recs.map(liveState));
    if (args.json) {
      process.stdout.write(`${JSON.stringify(args.name ? states[0] : states, null, 2)}\n`);
      return;
    }
    if (states.length === 0) {
      process.stdout.write(`nbdraid: no arrays in ${args.state}; create one with 'nbdraid create NAME MEMBER... --size 1G'\n`);
      return;
    }
    process.stdout.write(`${states.map(formatStatus).join('\n\n')}\n`);
  });
}

export const statusCommand: CommandModule<StateArgs, StatusArgs> = {
  command: 'status [name]',
  describe: 'show arrays: members, [UU_U], clean/degraded/offline, events',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', describe: 'one array (default: all)' })
    .option('json', { type: 'boolean', default: false }) as unknown as Argv<StatusArgs>,
  handler: status,
};
