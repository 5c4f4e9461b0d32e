// `nbdraid list [--json]`: the arrays this state directory records (from the registry alone; no
// member is read: `nbdraid status` shows their live state).
import type { Argv, CommandModule } from 'yargs';
import type { ArrayRecord } from '../../lib/coordination/arrays.js';
import { formatBytes, table } from '../format.js';
import { type StateArgs, noArrays, withStore } from './array-common.js';

interface Args extends StateArgs { json: boolean }

function row(r: ArrayRecord): string[] {
  const inSlot = r.members.filter((m) => m.slot !== null && m.state === 'active').length;
  const spares = r.members.filter((m) => m.state === 'spare').length;
  return [r.name, r.uuid, `raid${r.level}`, `${inSlot}/${r.raidDisks}${spares ? ` +${spares} spare` : ''}`,
    formatBytes(r.memberSize * (r.raidDisks - 1)), String(r.revision)];
}

export const listCommand: CommandModule<StateArgs, Args> = {
  command: 'list',
  describe: 'list the arrays this state directory records: name, uuid, level, members, size',
  builder: (y: Argv<StateArgs>) => y
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output (the registry records)' }) as unknown as Argv<Args>,
  handler: (args) => withStore(args, async (reg) => {
    const recs = await reg.listArrays();
    if (args.json) process.stdout.write(`${JSON.stringify(recs, null, 2)}\n`);
    else if (recs.length === 0) process.stdout.write(`${noArrays(args)}\n`);
    else process.stdout.write(`${table(['NAME', 'UUID', 'LEVEL', 'MEMBERS', 'SIZE', 'REVISION'], recs.map(row))}\n`);
  }),
};
