// `nbdraid events [--json] [--limit N] [--task ID] [--array NAME]`: the journal of transitions.
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../../lib/coordination/db.js';
import { EventLog, type EventRecord } from '../../lib/coordination/events.js';
import { NbdraidError } from '../../lib/errors.js';
import { table } from '../format.js';

interface Args { state: string; json: boolean; limit: number; task?: number; array?: string }

export const eventsCommand: CommandModule<{ state: string }, Args> = {
  command: 'events',
  describe: 'show the newest events: every transition of arrays, tasks, partitions, leases and controllers',
  builder: (y: Argv<{ state: string }>) => y
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .option('limit', { type: 'number', default: 50, describe: 'how many of the newest events' })
    .option('task', { type: 'number', describe: 'only events of this task' })
    .option('array', { type: 'string', describe: 'only events of this array' }) as unknown as Argv<Args>,
  handler: (args) => {
    if (!Number.isInteger(args.limit) || args.limit < 1) {
      throw new NbdraidError('EINVAL', 'events --limit', `must be a positive integer, got ${args.limit}`);
    }
    const db = openDatabase(args.state);
    try {
      const events = new EventLog(db).list({ limit: args.limit, taskId: args.task, arrayName: args.array });
      if (args.json) process.stdout.write(`${JSON.stringify(events)}\n`);
      else if (events.length === 0) process.stdout.write('no events\n');
      else process.stdout.write(`${table(['ID', 'TIME', 'ACTOR', 'EVENT', 'ARRAY', 'TASK', 'PART', 'DETAIL'], events.map(row))}\n`);
    } finally {
      db.close();
    }
  },
};

function row(e: EventRecord): (string | number)[] {
  const detail = e.detail === null ? '' : JSON.stringify(e.detail);
  return [e.id, new Date(e.at).toISOString().replace('T', ' ').slice(0, 23), e.actor, e.kind, e.arrayName ?? '-',
    e.taskId ?? '-', e.partitionIdx ?? '-', detail.length > 60 ? `${detail.slice(0, 57)}...` : detail];
}
