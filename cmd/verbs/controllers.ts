// `nbdraid controllers [--json] [--all]`: the controller processes, their addresses and liveness.
// Liveness is the flock test itself; a row still marked live whose lock is free shows as dead.
import type { Argv, CommandModule } from 'yargs';
import { ControllerRegistry, type ControllerRecord } from '../../lib/coordination/controllers.js';
import { openDatabase } from '../../lib/coordination/db.js';
import { formatDuration, table } from '../format.js';

interface Args { state: string; json: boolean; all: boolean }

type Shown = ControllerRecord & { alive: boolean };

export const controllersCommand: CommandModule<{ state: string }, Args> = {
  command: 'controllers',
  describe: 'list controller processes with their addresses and liveness',
  builder: (y: Argv<{ state: string }>) => y
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
    .option('all', { type: 'boolean', default: false, describe: 'include stopped and dead controllers' }) as unknown as Argv<Args>,
  handler: (args) => {
    const db = openDatabase(args.state);
    try {
      const reg = new ControllerRegistry(db, args.state);
      const shown: Shown[] = reg.list().map((c) => ({ ...c, alive: c.state === 'live' && reg.isAlive(c.id) }))
        .filter((c) => args.all || c.state === 'live');
      if (args.json) {
        process.stdout.write(`${JSON.stringify(shown)}\n`);
      } else if (shown.length === 0) {
        process.stdout.write(`no live controllers${args.all ? '' : ' (--all shows ended ones)'}; start one with 'nbdraid serve NAME' or 'nbdraid cluster NAME'\n`);
      } else {
        process.stdout.write(`${table(['ID', 'STATE', 'PID', 'HOST', 'ADDRESS', 'UP', 'HEARTBEAT'], shown.map(row))}\n`);
      }
    } finally {
      db.close();
    }
  },
};

function row(c: Shown): (string | number)[] {
  const now = Date.now();
  const state = c.state === 'live' ? (c.alive ? 'live' : 'dead (not yet reaped)') : c.state;
  const up = formatDuration(((c.endedAt ?? now) - c.startedAt) / 1000);
  return [c.id, state, c.pid, c.host, c.address ?? '-', up, `${formatDuration((now - c.heartbeatAt) / 1000)} ago`];
}
