// `nbdraid controllers [--json] [--all]`: the controller processes, their addresses and liveness.
// Liveness is the flock test on SQLite, a heartbeat within --dead-after on PostgreSQL; a row
// still marked live that fails it shows as dead.
import type { Argv, CommandModule } from 'yargs';
import type { ShownController as Shown } from '../../lib/coordination/admin.js';
import { formatDuration, table } from '../format.js';
import { type StateArgs, withStore } from './array-common.js';

interface Args extends StateArgs { json: boolean; all: boolean }

export const controllersCommand: CommandModule<StateArgs, Args> = {
  command: 'controllers',
  describe: 'list controller processes with their addresses and liveness',
  builder: (y: Argv<StateArgs>) => y
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .option('all', { type: 'boolean', default: false, describe: 'include stopped and dead controllers' }) as unknown as Argv<Args>,
  handler: (args) => withStore(args, async (store) => {
    const shown: Shown[] = (await store.listControllers()).filter((c) => args.all || c.state === 'live');
    if (args.json) {
      process.stdout.write(`${JSON.stringify(shown)}\n`);
    } else if (shown.length === 0) {
      process.stdout.write(`no live controllers${args.all ? '' : ' (--all shows ended ones)'}; start one with 'nbdraid serve NAME' or 'nbdraid cluster NAME'\n`);
    } else {
      process.stdout.write(`${table(['ID', 'STATE', 'PID', 'HOST', 'ADDRESS', 'UP', 'HEARTBEAT'], shown.map(row))}\n`);
    }
  }),
};

function row(c: Shown): (string | number)[] {
  const now = Date.now();
  const state = c.state === 'live' ? (c.alive ? 'live' : 'dead (not yet reaped)') : c.state;
  const up = formatDuration(((c.endedAt ?? now) - c.startedAt) / 1000);
  return [c.id, state, c.pid, c.host, c.address ?? '-', up, `${formatDuration((now - c.heartbeatAt) / 1000)} ago`];
}
