// `nbdraid check NAME` and `nbdraid repair NAME`: parity scrub as a partitioned task that the
// array's controllers share; each mismatch is reported with its volume and member offsets.
import type { Argv, CommandModule } from 'yargs';
import type { AdminStore } from '../../lib/coordination/admin.js';
import { TERMINAL_TASK_STATES, type TaskRecord } from '../../lib/coordination/index.js';
import { startScrub } from '../../lib/controller/scrub.js';
import { NbdraidError } from '../../lib/errors.js';
import { formatTask, taskView } from '../task-view.js';
import { type StateArgs, withStore } from './array-common.js';

interface ScrubArgs extends StateArgs { name: string; wait: boolean; json: boolean }

interface ScrubResult { mismatches: number; list: { stripe: number; volumeOffset: number; memberOffset: number; parityMember: number }[]; truncated: boolean }

async function waitFor(tasks: AdminStore, id: number, showProgress: boolean): Promise<TaskRecord> {
  for (;;) {
    const t = await tasks.requireTask(id);
    if (TERMINAL_TASK_STATES.includes(t.state)) return t;
    if (showProgress) process.stderr.write(`\x1b[2K\r${formatTask(taskView(await tasks.progress(id))).split('\n')[0].trim()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function report(t: TaskRecord, args: ScrubArgs): void {
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ task: t.id, state: t.state, reason: t.reason, result: t.result }, null, 2)}\n`);
  } else if (t.state !== 'DONE') {
    throw new NbdraidError('EIO', `${t.kind} ${args.name}`, `task ${t.id} ended ${t.state}${t.reason ? `: ${t.reason}` : ''}`);
  } else {
    const r = t.result as ScrubResult;
    const lines = r.list.map((m) => `  stripe ${m.stripe}: volume offset ${m.volumeOffset}, member offset ${m.memberOffset} (parity on member ${m.parityMember})`);
    process.stdout.write(`nbdraid: ${args.name}: ${t.kind} found ${r.mismatches} mismatched stripe(s)${t.kind === 'repair' && r.mismatches ? ', parity rewritten' : ''}\n${lines.join('\n')}${lines.length ? '\n' : ''}`);
  }
  if (t.state !== 'DONE') process.exitCode = 1;
}

function scrubCommand(kind: 'check' | 'repair', describe: string): CommandModule<StateArgs, ScrubArgs> {
  return {
    command: `${kind} <name>`,
    describe,
    builder: (y: Argv<StateArgs>) => y
      .positional('name', { type: 'string', demandOption: true, describe: 'array name' })
      .option('wait', { type: 'boolean', default: true, describe: 'wait for the result (--no-wait: print the task id and return)' })
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }) as unknown as Argv<ScrubArgs>,
    handler: async (args) => {
      await withStore(args, async (store) => {
        const rec = await store.requireArray(args.name);
        const live = (await store.listControllers()).filter((c) => c.alive);
        const task = await startScrub(store, rec, kind);
        if (live.length === 0) process.stderr.write(`nbdraid: no controller is running; task ${task.id} waits until one serves ${args.name} (nbdraid serve ${args.name})\n`);
        if (!args.wait) {
          process.stdout.write(args.json ? `${JSON.stringify({ task: task.id })}\n` : `nbdraid: ${kind} of ${args.name} started as task ${task.id}; follow it with 'nbdraid status ${args.name} --watch'\n`);
          return;
        }
        const done = await waitFor(store, task.id, !args.json && process.stderr.isTTY);
        if (!args.json && process.stderr.isTTY) process.stderr.write('\n');
        report(done, args);
      });
    },
  };
}

export const checkCommand = scrubCommand('check', 'compare parity with data on every stripe; report each mismatch (volume and member offsets)');
export const repairCommand = scrubCommand('repair', 'like check, and rewrite the parity of every mismatched stripe');
