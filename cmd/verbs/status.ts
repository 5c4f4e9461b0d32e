// `nbdraid status [NAME] [--json] [--watch]`: md-like state of one or every registered array, with
// the progress of its background tasks (bar, percent, speed, ETA, who works on which partition).
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import type { AdminStore } from '../../lib/coordination/admin.js';
import { type TaskView, formatTask, taskView } from '../task-view.js';
import { type LiveState, liveState } from '../../lib/controller/array-admin.js';
import { type StateArgs, formatStatus, noArrays, withStore } from './array-common.js';

/** `watch` is the raw option: undefined when absent, '' for a bare --watch, else the seconds. */
interface StatusArgs extends StateArgs { name?: string; json: boolean; watch?: string }

/**
 * The refresh interval in seconds (undefined: print once) and the array name. A bare --watch
 * refreshes every second; in `status --watch NAME` the word after --watch is the array's name.
 */
function watchOptions(args: Pick<StatusArgs, 'name' | 'watch'>): { name?: string; every?: number } {
  const { name, watch } = args;
  if (watch === undefined) return { name };
  if (watch === '') return { name, every: 1 };
  const n = Number(watch);
  if (Number.isFinite(n) && n > 0) return { name, every: Math.max(0.2, n) };
  if (name === undefined && !/^[-+.\d]/.test(watch)) return { name: watch, every: 1 };
  throw new NbdraidError('EINVAL', 'status', `--watch takes a number of seconds greater than 0, got '${watch}'`);
}

type ArrayStatus = LiveState & { tasks: TaskView[] };

/** Bytes done per task at the previous refresh, for a speed over the last interval when watching. */
type Samples = Map<number, { at: number; bytes: number; speed: number }>;

async function collect(reg: AdminStore, name: string | undefined, samples?: Samples): Promise<ArrayStatus[]> {
  const recs = name ? [await reg.requireArray(name)] : await reg.listArrays();
  return Promise.all(recs.map(async (rec) => {
    const live = await liveState(rec);
    const views: TaskView[] = [];
    for (const t of await reg.listTasks({ arrayName: rec.name, activeOnly: true })) {
      const p = await reg.progress(t.id);
      views.push(taskView(p, Date.now(), samples && sampledSpeed(samples, t.id, p.bytes)));
    }
    return { ...live, tasks: views };
  }));
}

function sampledSpeed(samples: Samples, id: number, bytes: number): number | undefined {
  const now = Date.now();
  const prev = samples.get(id);
  let speed = prev?.speed;
  if (prev && now > prev.at) speed = 0.5 * (prev.speed || 0) + 0.5 * (((bytes - prev.bytes) * 1000) / (now - prev.at));
  samples.set(id, { at: now, bytes, speed: speed ?? 0 });
  return prev ? speed : undefined;
}

function render(states: ArrayStatus[], args: StatusArgs): string {
  if (args.json) return `${JSON.stringify(args.name ? states[0] : states, null, 2)}\n`;
  if (states.length === 0) return `${noArrays(args)}\n`;
  return `${states.map((s) => [formatStatus(s), ...s.tasks.map(formatTask)].join('\n')).join('\n\n')}\n`;
}

async function status(args: StatusArgs): Promise<void> {
  const { name, every } = watchOptions(args);
  args = { ...args, name };
  await withStore(args, async (reg) => {
    if (every === undefined) {
      const states = await collect(reg, name);
      process.stdout.write(render(states, args));
      if (args.json && states.length === 0) process.stderr.write(`${noArrays(args)}\n`);
      return;
    }
    const samples: Samples = new Map();
    const everyMs = every * 1000;
    let stop = false;
    process.once('SIGINT', () => { stop = true; });
    while (!stop) {
      const text = render(await collect(reg, name, samples), args);
      process.stdout.write(args.json ? text : `\x1b[H\x1b[2J${new Date().toLocaleTimeString()}  (Ctrl-C to stop)\n${text}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  });
}

export const statusCommand: CommandModule<StateArgs, StatusArgs> = {
  command: 'status [name]',
  describe: 'show arrays: members, [UU_U], clean/degraded/offline, events, and background tasks with progress',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', describe: 'one array (default: all)' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .option('watch', { type: 'string', describe: 'refresh every N seconds (bare --watch: every second) until Ctrl-C' }) as unknown as Argv<StatusArgs>,
  handler: status,
};
