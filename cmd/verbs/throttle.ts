// `nbdraid throttle NAME [--min MBPS] [--max MBPS] [--inflight N]`: background I/O limits, applied
// by every controller of the array within a moment, also to tasks already running.
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import { type StateArgs, withStore } from './array-common.js';

interface Args extends StateArgs { name: string; min?: number; max?: number; inflight?: number; json: boolean }

function check(v: number | undefined, what: string, min: number): void {
  if (v !== undefined && (!Number.isFinite(v) || v < min)) throw new NbdraidError('EINVAL', `throttle ${what}`, `must be a number >= ${min}, got ${v}`);
}

export const throttleCommand: CommandModule<StateArgs, Args> = {
  command: 'throttle <name>',
  describe: 'show or set background I/O limits: min MB/s kept under foreground load, max MB/s when idle (0 = unlimited), I/Os in flight',
  builder: (y: Argv<StateArgs>) => y
    .positional('name', { type: 'string', demandOption: true, describe: 'array name' })
    .option('min', { type: 'number', describe: 'MB/s background work keeps while clients are busy' })
    .option('max', { type: 'number', describe: 'MB/s background work may use when clients are idle (0 = no limit)' })
    .option('inflight', { type: 'number', describe: 'background I/Os in flight per controller' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }) as unknown as Argv<Args>,
  handler: async (args) => {
    check(args.min, '--min', 0);
    check(args.max, '--max', 0);
    check(args.inflight, '--inflight', 1);
    await withStore(args, async (reg) => {
      const set = args.min !== undefined || args.max !== undefined || args.inflight !== undefined;
      const rec = set
        ? await reg.updateArray(args.name, (r) => {
          r.throttle = { minMBps: args.min ?? r.throttle.minMBps, maxMBps: args.max ?? r.throttle.maxMBps, inflight: Math.floor(args.inflight ?? r.throttle.inflight) };
          if (r.throttle.maxMBps > 0 && r.throttle.maxMBps < r.throttle.minMBps) {
            throw new NbdraidError('EINVAL', `throttle ${args.name}`, `--max (${r.throttle.maxMBps}) is below --min (${r.throttle.minMBps})`);
          }
        })
        : await reg.requireArray(args.name);
      const t = rec.throttle;
      process.stdout.write(args.json ? `${JSON.stringify(t)}\n` : `nbdraid: ${args.name}: background min ${t.minMBps} MB/s, max ${t.maxMBps || 'unlimited'}${t.maxMBps ? ' MB/s' : ''}, ${t.inflight} in flight\n`);
    });
  },
};
