// `nbdraid cluster NAME --controllers N`: starts N controller processes over one array and one
// state directory; controller i listens on PORT+i (or SOCKET.i), and serves its metrics on
// METRICS_PORT+i when --metrics is given; the limit, TLS and log-format flags reach every one.
// Ctrl-C stops them all cleanly.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import { lineLog, parseLogFormat } from '../../lib/log.js';
import type { StateArgs } from './array-common.js';
import {
  DEFAULT_LISTEN, type LimitArgs, type LogFormatArgs, type TlsArgs, hostPort, limitFlags, parseAddress, parseListen, serverLimits, serverTls, tlsFlags,
  withLimitOptions, withLogFormatOption, withTlsOptions,
} from './serve.js';

interface Args extends StateArgs, LimitArgs, LogFormatArgs, Partial<TlsArgs> { name: string; controllers: number; listen?: string; socket?: string; force: boolean; metrics?: string }

/** The arguments of controller process i: its own address, the shared flags. */
export function controllerArgs(args: Args, i: number): string[] {
  const out = ['--state', args.state, 'serve', args.name];
  if (args.socket) out.push('--socket', `${args.socket}.${i}`);
  else {
    const { host, port } = parseListen(args.listen ?? DEFAULT_LISTEN);
    out.push('--listen', hostPort(host, port + i));
  }
  if (args.metrics !== undefined) {
    const { host, port } = parseAddress(args.metrics, '--metrics');
    out.push('--metrics', hostPort(host, port + i));
  }
  if (args.force) out.push('--force');
  if (args['log-format'] !== undefined) out.push('--log-format', args['log-format']);
  out.push(...limitFlags(args), ...tlsFlags(args));
  return out;
}

async function cluster(args: Args): Promise<void> {
  if (!Number.isInteger(args.controllers) || args.controllers < 1 || args.controllers > 64) {
    throw new NbdraidError('EINVAL', 'cluster --controllers', `must be a whole number 1..64, got ${args.controllers}`);
  }
  serverLimits(args); // bad limits and TLS flags are refused here, not by every controller
  serverTls({ tls: args.tls ?? 'off', 'tls-certificates': args['tls-certificates'], 'tls-psk': args['tls-psk'], 'tls-verify-peer': args['tls-verify-peer'] ?? false });
  const log = lineLog(parseLogFormat(args['log-format'] ?? 'human'), { array: args.name });
  if (args.metrics !== undefined && parseAddress(args.metrics, '--metrics').port + args.controllers - 1 > 65535) {
    throw new NbdraidError('EINVAL', `cluster --metrics ${args.metrics}`, `controller ${args.controllers - 1} would need port PORT+${args.controllers - 1}, beyond 65535; choose a lower port`);
  }
  const children: ChildProcess[] = [];
  let stopping = false;
  const exited = Array.from({ length: args.controllers }, (_, i) => new Promise<number>((resolve) => {
    // Stagger starts: the first assembles and starts any pending work before the others join.
    setTimeout(() => {
      if (stopping) return resolve(0);
      const child = spawn(process.execPath, [process.argv[1], ...controllerArgs(args, i)], { stdio: ['ignore', 'inherit', 'inherit'] });
      children[i] = child;
      child.on('exit', (code, signal) => {
        if (!stopping) {
          log({
            event: 'cluster.controller-exited', level: 'warn',
            message: `cluster: controller process ${i} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); the others carry on`,
            fields: { process: i, pid: child.pid, code, signal },
          });
        }
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
  builder: (y: Argv<StateArgs>) => withTlsOptions(withLogFormatOption(withLimitOptions(y)))
    .positional('name', { type: 'string', demandOption: true, describe: 'array name' })
    .option('controllers', { type: 'number', default: 3, describe: 'how many controller processes' })
    .option('listen', { type: 'string', describe: `HOST:PORT of controller 0; controller i uses PORT+i (default ${DEFAULT_LISTEN})` })
    .option('socket', { type: 'string', describe: 'unix socket path prefix; controller i listens on PATH.i' })
    .option('force', { type: 'boolean', default: false, describe: 'assemble even with stale members (as mdadm --force)' })
    .option('metrics', { type: 'string', describe: 'HOST:PORT of controller 0\'s Prometheus metrics; controller i uses PORT+i' })
    .conflicts('socket', 'listen') as unknown as Argv<Args>,
  handler: cluster,
};
