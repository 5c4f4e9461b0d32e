// `nbdraid tasks [--json] [--all]`: background tasks with their progress; `nbdraid tasks
// pause|resume|cancel ID` steers one. Read-only except for those three operator actions.
import type { Argv, CommandModule } from 'yargs';
import type { AdminStore } from '../../lib/coordination/admin.js';
import type { TaskProgress } from '../../lib/coordination/tasks.js';
import { NbdraidError } from '../../lib/errors.js';
import { formatBytes, table } from '../format.js';
import { type StateArgs, withStore } from './array-common.js';

interface Args extends StateArgs { action?: string; id?: number; json: boolean; all: boolean }

const ACTIONS = ['list', 'pause', 'resume', 'cancel'] as const;

export const tasksCommand: CommandModule<StateArgs, Args> = {
  command: 'tasks [action] [id]',
  describe: 'list background tasks (rebuild, check, resync...) or pause, resume, cancel one',
  builder: (y: Argv<StateArgs>) => y
    .positional('action', { type: 'string', choices: ACTIONS, default: 'list', describe: 'what to do' })
    .positional('id', { type: 'number', describe: 'task id (for pause, resume, cancel)' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .option('all', { type: 'boolean', default: false, describe: 'include finished tasks' }) as unknown as Argv<Args>,
  handler: async (args) => {
    await withStore(args, async (store) => {
      if (args.action === undefined || args.action === 'list') { await list(store, args); return; }
      if (args.id === undefined || !Number.isInteger(args.id)) {
        throw new NbdraidError('EINVAL', `tasks ${args.action}`, `name the task: nbdraid tasks ${args.action} ID (ids from 'nbdraid tasks')`);
      }
      const id = args.id;
      const t = await (args.action === 'pause' ? store.pauseTask(id) : args.action === 'resume' ? store.resumeTask(id) : store.cancelTask(id));
      process.stdout.write(args.json ? `${JSON.stringify(t)}\n` : `nbdraid: task ${t.id} (${t.kind}) is ${t.state}\n`);
    });
  },
};

async function list(store: AdminStore, args: Args): Promise<void> {
  const progress: TaskProgress[] = [];
  for (const t of await store.listTasks({ activeOnly: !args.all })) progress.push(await store.progress(t.id));
  if (args.json) {
    process.stdout.write(`${JSON.stringify(progress)}\n`);
    return;
  }
  if (progress.length === 0) {
    process.stdout.write(args.all ? 'no tasks\n' : 'no active tasks (--all shows finished ones)\n');
    return;
  }
  process.stdout.write(`${table(['ID', 'KIND', 'ARRAY', 'STATE', 'PARTITIONS', 'DONE', 'BYTES', 'INITIATOR', 'WORKING', 'REASON'], progress.map(row))}\n`);
}

function row(p: TaskProgress): (string | number)[] {
  const t = p.task;
  const pct = p.stripesTotal > 0 ? (100 * p.stripesDone) / p.stripesTotal : (100 * t.partitionsDone) / t.partitionsTotal;
  const working = p.inProgress.map((w) => `${w.idx}@c${w.owner}`).join(',') || '-';
  return [t.id, t.kind, t.arrayName ?? '-', t.state, `${t.partitionsDone}/${t.partitionsTotal}`, `${pct.toFixed(1)}%`,
    formatBytes(p.bytes), t.initiator === null ? '-' : `c${t.initiator}`, working, t.reason ?? ''];
}
