// `nbdraid replace NAME --member N --with DEV`: rebuild slot N onto DEV, then drop the old member.
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import { parseSize } from '../../lib/raid/units.js';
import { type StateArgs, withStore } from './array-common.js';
import { prepareSpare, recordSpare } from '../../lib/controller/array-admin.js';

interface Args extends StateArgs { name: string; member: number; with: string; size?: string; force: boolean }

export const replaceCommand: CommandModule<StateArgs, Args> = {
  command: 'replace <name>',
  describe: 'replace a member: it is failed and a controller rebuilds its slot onto the new device',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', demandOption: true, describe: 'array name' })
    .option('member', { type: 'number', demandOption: true, describe: 'slot number of the member to replace' })
    .option('with', { type: 'string', demandOption: true, describe: 'the new file or block device' })
    .option('size', { type: 'string', describe: 'create the file, sparse, of this size when it does not exist' })
    .option('force', { type: 'boolean', default: false, describe: "overwrite another array's superblock on the device" }) as unknown as Argv<Args>,
  handler: async (args) => {
    const ctx = `replace ${args.name}`;
    await withStore(args, async (reg) => {
      const rec = await reg.requireArray(args.name);
      const slot = args.member;
      if (!Number.isInteger(slot) || slot < 0 || slot >= rec.raidDisks) {
        throw new NbdraidError('EINVAL', ctx, `--member must be a slot number 0..${rec.raidDisks - 1}, got ${slot}`);
      }
      const others = rec.members.filter((m) => m.slot !== slot && m.slot !== null && m.state !== 'active' && m.state !== 'removed' && m.state !== 'spare');
      if (others.length > 0) throw new NbdraidError('EBUSY', ctx, `slot ${others[0].slot} is ${others[0].state}; replacing slot ${slot} now would take the array offline. Wait for it to finish (nbdraid status ${args.name})`);
      const size = args.size === undefined ? undefined : parseSize(args.size, '--size');
      const p = await prepareSpare(rec, { name: args.name, device: args.with, size, force: args.force }, ctx);
      await recordSpare(reg, args.name, p, slot, (r) => {
        const old = r.members.find((m) => m.slot === slot && m.state === 'active');
        if (old) old.state = 'faulty';
      });
      process.stdout.write(`nbdraid: ${args.name}: slot ${slot} will be rebuilt onto ${p}; follow it with 'nbdraid status ${args.name} --watch'\n`);
    });
  },
};
