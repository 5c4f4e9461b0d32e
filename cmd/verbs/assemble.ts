// `nbdraid assemble NAME MEMBER... [--force]`: check the members' superblocks as mdadm --assemble
// does and record the array (and its member paths) in the registry.
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import { openArray } from '../../lib/raid/open.js';
import { formatUuid } from '../../lib/raid/superblock.js';
import { LeaseStore } from '../../lib/coordination/leases.js';
import { regionStripes } from '../../lib/controller/plans.js';
import type { Geometry } from '../../lib/raid/geometry.js';
import { recordOf } from '../../lib/controller/array-admin.js';
import { type StateArgs, absolute, withRegistry } from './array-common.js';

function regionsOf(g: Geometry): number[] {
  return Array.from({ length: Math.ceil(g.stripes / regionStripes(g)) }, (_, i) => i);
}

interface AssembleArgs extends StateArgs { name: string; members: string[]; force: boolean; json: boolean }

async function assemble(args: AssembleArgs): Promise<void> {
  const ctx = `assemble ${args.name}`;
  const paths = absolute(args.members);
  await withRegistry(args.state, async (reg, db) => {
    const existing = reg.get(args.name);
    const opened = await openArray(paths, { name: args.name, force: args.force });
    try {
      const uuid = formatUuid(opened.meta.info.uuid);
      if (existing && existing.uuid !== uuid) {
        throw new NbdraidError('EEXIST', ctx, `the registered array ${args.name} has uuid ${existing.uuid}, these members belong to ${uuid}; assemble them under another name`);
      }
      const other = reg.list().find((r) => r.uuid === uuid && r.name !== args.name);
      if (other) throw new NbdraidError('EEXIST', ctx, `these members are already registered as array ${other.name}; assemble them under that name`);
      const rec = recordOf(args.name, opened.meta, opened.report, opened.absent);
      for (const u of opened.unopened) rec.members.push({ slot: null, path: u.path, state: 'faulty', deviceUuid: '' });
      const saved = existing ? reg.update(args.name, (r) => Object.assign(r, rec)) : reg.create(rec);
      reg.recordWritten(args.name, opened.onDisk.events, opened.onDisk.state);
      // Not shut down cleanly, and nothing here says where writes were in flight: resync it all (md's rule).
      const g = opened.meta.geometry();
      if (!opened.onDisk.state.clean) new LeaseStore(db, null, args.name).requireResync(regionsOf(g));
      const n = opened.meta.info.raidDisks;
      const up = n - opened.missing.length;
      if (args.json) {
        process.stdout.write(`${JSON.stringify({ array: saved, report: opened.report, unopened: opened.unopened, missing: opened.missing }, null, 2)}\n`);
        return;
      }
      for (const r of opened.report) {
        process.stdout.write(`nbdraid: ${r.path}: ${r.verdict}${r.slot !== null ? ` in slot ${r.slot}` : ''}, events ${r.events}${r.reason ? ` (${r.reason})` : ''}\n`);
      }
      for (const u of opened.unopened) process.stdout.write(`nbdraid: ${u.path}: not opened (${u.reason})\n`);
      process.stdout.write(`nbdraid: assembled ${args.name} with ${up} of ${n} members${opened.missing.length ? `, degraded (slot ${opened.missing.join(', ')} missing)` : ''}; serve it with 'nbdraid serve ${args.name}'\n`);
    } finally {
      await opened.close();
    }
  });
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
