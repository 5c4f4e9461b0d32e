// `nbdraid events [--json] [--limit N] [--task ID] [--array NAME]`: the journal of transitions.
import type { Argv, CommandModule } from 'yargs';
import type { EventRecord } from '../../lib/coordination/events.js';
import { NbdraidError } from '../../lib/errors.js';
import { table } from '../format.js';
import { type StateArgs, withStore } from './array-common.js';

interface Args extends StateArgs { json: boolean; limit: number; task?: number; array?: string }

export const eventsCommand: CommandModule<StateArgs, Args> = {
  command: 'events',
  describe: 'show the newest events: every transition of arrays, tasks, partitions, leases and controllers',
  builder: (y: Argv<StateArgs>) => y
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .option('limit', { type: 'number', default: 50, describe: 'how many of the newest events' })
    .option('task', { type: 'number', describe: 'only events of this task' })
    .option('array', { type: 'string', describe: 'only events of this array' }) as unknown as Argv<Args>,
  handler: async (args) => {
    if (!Number.isInteger(args.limit) || args.limit < 1) {
      throw new NbdraidError('EINVAL', 'events --limit', `must be a positive integer, got ${args.limit}`);
    }
    await withStore(args, async (store) => {
      const events = await store.listEvents({ limit: args.limit, taskId: args.task, arrayName: args.array });
      if (args.json) process.stdout.write(`${JSON.stringify(events)}\n`);
      else if (events.length === 0) process.stdout.write('no events\n');
      else process.stdout.write(`${table(['ID', 'TIME', 'ACTOR', 'EVENT', 'ARRAY', 'TASK', 'PART', 'DETAIL'], events.map(row))}\n`);
    });
  },
};

function row(e: EventRecord): (string | number)[] {
  const detail = e.detail === null ? '' : JSON.stringify(e.detail);
  return [e.id, new Date(e.at).toISOString().replace('T', ' ').slice(0, 23), e.actor, e.kind, e.arrayName ?? '-',
    e.taskId ?? '-', e.partitionIdx ?? '-', detail.length > 60 ? `${detail.slice(0, 57)}...` : detail];
}
