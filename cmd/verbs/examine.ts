// `nbdraid examine MEMBER... [--json]`: the md superblock of each member, in mdadm --examine's terms.
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import { examineSuperblock, formatExamine } from '../../lib/raid/examine.js';
import { readSuperblock } from '../../lib/raid/metadata.js';
import { openMemberDevice } from '../../lib/raid/members.js';
import type { StateArgs } from './array-common.js';

interface ExamineArgs extends StateArgs { members: string[]; json: boolean }

async function examineOne(path: string): Promise<ReturnType<typeof examineSuperblock>> {
  const dev = await openMemberDevice(path, { readOnly: true });
  try {
    return examineSuperblock(await readSuperblock(dev, path));
  } finally {
    await dev.close();
  }
}

async function examine(args: ExamineArgs): Promise<void> {
  const results = await Promise.allSettled(args.members.map(examineOne));
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (args.json) {
    const out = results.map((r, i) => (r.status === 'fulfilled' ? { path: args.members[i], ...r.value } : { path: args.members[i], error: (r.reason as Error).message }));
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    results.forEach((r, i) => { if (r.status === 'fulfilled') process.stdout.write(formatExamine(args.members[i], r.value)); });
  }
  if (failures.length > 0) {
    throw new NbdraidError('EINVAL', 'examine', `${failures.join('; ')}${failures.length === results.length ? '' : ' (the others are shown above)'}`);
  }
}

export const examineCommand: CommandModule<StateArgs, ExamineArgs> = {
  command: 'examine <members..>',
  describe: 'show the md v1.2 superblock of members (like mdadm --examine)',
  builder: (y: Argv<StateArgs>) => y
    .positional('members', { type: 'string', array: true, demandOption: true, describe: 'member files or block devices' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }) as unknown as Argv<ExamineArgs>,
  handler: examine,
};
