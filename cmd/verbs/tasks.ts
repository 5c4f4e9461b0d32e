// `nbdraid tasks [--json] [--all]`: background tasks with their progress; `nbdraid tasks
// pause|resume|cancel ID` steers one. Read-only except for those three operator actions.
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../../lib/coordination/db.js';
import { TaskStore, type TaskProgress } from '../../lib/coordination/tasks.js';
import { NbdraidError } from '../../lib/errors.js';
import { formatBytes, table } from '../format.js';

interface Args { state: string; action?: string; id?: number; json: boolean; all: boolean }

const ACTIONS = ['list', 'pause', 'resume', 'cancel'] as const;

export const tasksCommand: CommandModule<{ state: string }, Args> = {
  command: 'tasks [action] [id]',
  describe: 'list background tasks (rebuild, check, resync...) or pause, resume, cancel one',
  builder: (y: Argv<{ state: string }>) => y
    .positional('action', { type: 'string', choices: ACTIONS, default: 'list', describe: 'what to do' })
    .positional('id', { type: 'number', describe: 'task id (for pause, resume, cancel)' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .option('all', { type: 'boolean', default: false, describe: 'include finished tasks' }) as unknown as Argv<Args>,
  handler: async (args) => {
    const db = openDatabase(args.state);
    try {
      const store = new TaskStore(db, { actor: 'cli' });
      if (args.action === undefined || args.action === 'list') return list(store, args);
      if (args.id === undefined || !Number.isInteger(args.id)) {
        throw new NbdraidError('EINVAL', `tasks ${args.action}`, `name the task: nbdraid tasks ${args.action} ID (ids from 'nbdraid tasks')`);
      }
      const t = args.action === 'pause' ? store.pause(args.id) : args.action === 'resume' ? store.resume(args.id) : store.cancel(args.id);
      process.stdout.write(args.json ? `${JSON.stringify(t)}\n` : `nbdraid: task ${t.id} (${t.kind}) is ${t.state}\n`);
    } finally {
      db.close();
    }
  },
};

function list(store: TaskStore, args: Args): void {
  const progress = store.list({ activeOnly: !args.all }).map((t) => store.progress(t.id));
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
