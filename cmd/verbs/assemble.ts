// `nbdraid assemble NAME MEMBER... [--force]`: check the members' superblocks as mdadm --assemble
// does and record the array (and its member paths) in the registry.
import type { Argv, CommandModule } from 'yargs';
import { assembleAndRecord } from '../../lib/controller/array-admin.js';
import { type StateArgs, absolute, withStore } from './array-common.js';

interface AssembleArgs extends StateArgs { name: string; members: string[]; force: boolean; json: boolean }

async function assemble(args: AssembleArgs): Promise<void> {
  const done = await withStore(args, (reg) => assembleAndRecord(reg, args.name, absolute(args.members), args.force));
  if (args.json) {
    const { array, report, unopened, missing } = done;
    process.stdout.write(`${JSON.stringify({ array, report, unopened, missing }, null, 2)}\n`);
    return;
  }
  for (const r of done.report) {
    process.stdout.write(`nbdraid: ${r.path}: ${r.verdict}${r.slot !== null ? ` in slot ${r.slot}` : ''}, events ${r.events}${r.reason ? ` (${r.reason})` : ''}\n`);
  }
  for (const u of done.unopened) process.stdout.write(`nbdraid: ${u.path}: not opened (${u.reason})\n`);
  const up = done.raidDisks - done.missing.length;
  process.stdout.write(`nbdraid: assembled ${args.name} with ${up} of ${done.raidDisks} members${done.missing.length ? `, degraded (slot ${done.missing.join(', ')} missing)` : ''}; serve it with 'nbdraid serve ${args.name}'\n`);
}

export const assembleCommand: CommandModule<StateArgs, AssembleArgs> = {
  command: 'assemble <name> <members..>',
  describe: 'assemble an array from its members (freshest superblocks win) and record it',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', demandOption: true })
    .positional('members', { type: 'string', array: true, demandOption: true })
    .option('force', { type: 'boolean', default: false, describe: 'start from stale members, or dirty and degraded (may lose recent writes)' })
    .option('json', { type: 'boolean', default: false }) as unknown as Argv<AssembleArgs>,
  handler: assemble,
};
