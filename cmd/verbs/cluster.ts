// `nbdraid cluster NAME --controllers N`: starts N controller processes over one array and one
// state directory; controller i listens on PORT+i (or SOCKET.i). Ctrl-C stops them all cleanly.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import type { StateArgs } from './array-common.js';
import { DEFAULT_LISTEN, type LimitArgs, limitFlags, parseListen, serverLimits, withLimitOptions } from './serve.js';

interface Args extends StateArgs, LimitArgs { name: string; controllers: number; listen?: string; socket?: string; force: boolean }

/** The arguments of controller process i: its own address, the shared flags. */
export function controllerArgs(args: Args, i: number): string[] {
  const out = ['--state', args.state, 'serve', args.name];
  if (args.socket) out.push('--socket', `${args.socket}.${i}`);
  else {
    const { host, port } = parseListen(args.listen ?? DEFAULT_LISTEN);
    out.push('--listen', `${host.includes(':') ? `[${host}]` : host}:${port + i}`);
  }
  if (args.force) out.push('--force');
  out.push(...limitFlags(args));
  return out;
}

async function cluster(args: Args): Promise<void> {
  if (!Number.isInteger(args.controllers) || args.controllers < 1 || args.controllers > 64) {
    throw new NbdraidError('EINVAL', 'cluster --controllers', `must be a whole number 1..64, got ${args.controllers}`);
  }
  serverLimits(args); // bad limits are refused here, not by every controller
  const children: ChildProcess[] = [];
  let stopping = false;
  const exited = Array.from({ length: args.controllers }, (_, i) => new Promise<number>((resolve) => {
    // Stagger starts: the first assembles and starts any pending work before the others join.
    setTimeout(() => {
      if (stopping) return resolve(0);
      const child = spawn(process.execPath, [process.argv[1], ...controllerArgs(args, i)], { stdio: ['ignore', 'inherit', 'inherit'] });
      children[i] = child;
      child.on('exit', (code, signal) => {
        if (!stopping) process.stderr.write(`nbdraid: cluster: controller process ${i} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); the others carry on\n`);
        resolve(code ?? 1);
      });
    }, i * 300);
  }));
  const stop = (sig: NodeJS.Signals) => {
    stopping = true;
    for (const c of children) c?.kill(sig);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  const codes = await Promise.all(exited);
  if (!stopping || codes.some((c) => c !== 0)) process.exitCode = 1;
}

export const clusterCommand: CommandModule<StateArgs, Args> = {
  command: 'cluster <name>',
  describe: 'run several controller processes over one array; each serves NBD and shares the background work',
  builder: (y: Argv<StateArgs>) => withLimitOptions(y)
    .positional('name', { type: 'string', demandOption: true, describe: 'array name' })
    .option('controllers', { type: 'number', default: 3, describe: 'how many controller processes' })
    .option('listen', { type: 'string', describe: `HOST:PORT of controller 0; controller i uses PORT+i (default ${DEFAULT_LISTEN})` })
    .option('socket', { type: 'string', describe: 'unix socket path prefix; controller i listens on PATH.i' })
    .option('force', { type: 'boolean', default: false, describe: 'assemble even with stale members (as mdadm --force)' })
    .conflicts('socket', 'listen') as unknown as Argv<Args>,
  handler: cluster,
};
