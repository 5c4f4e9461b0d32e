// `nbdraid serve --file PATH`: serve a file or block device over NBD until SIGINT/SIGTERM.
// `nbdraid serve NAME`: serve the registered array NAME (export NAME) over NBD.
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { NbdraidError } from '../../lib/errors.js';
import { LOG_FORMATS, type Log, type LogFormat, lineLog, parseLogFormat, plainLines } from '../../lib/log.js';
import type { BlockDevice } from '../../lib/transport/block-device.js';
import { FileDevice } from '../../lib/transport/file-device.js';
import { TLS_MODES, type TlsMode, loadServerTls } from '../../lib/transport/tls.js';
import { parseSize } from '../../lib/raid/units.js';
import { DEFAULT_LIMITS, type ListenAddress, NbdServer, type NbdServerOptions } from '../../lib/transport/server.js';
import { Controller } from '../../lib/controller/controller.js';
import { coordinationTarget } from '../../lib/coordination/target.js';

interface ServeArgs {
  state: string;
  coordination?: string;
  deadAfter?: number;
  name?: string;
  file?: string;
  export?: string;
  listen?: string;
  socket?: string;
  'read-only': boolean;
  force?: boolean;
  'block-size'?: number;
  tls: TlsMode;
  'tls-certificates'?: string;
  'tls-psk'?: string;
  'tls-verify-peer': boolean;
  'payload-budget'?: string;
  'max-connections'?: number;
  'request-timeout'?: number;
  metrics?: string;
  'log-format'?: string;
}

export type LimitArgs = Pick<ServeArgs, 'payload-budget' | 'max-connections' | 'request-timeout'>;

/** The flags of the server-wide limits (docs/operations.md), for serve and cluster. */
export function withLimitOptions<T>(y: Argv<T>): Argv<T & LimitArgs> {
  return y
    .option('payload-budget', { type: 'string', describe: `request payload bytes held at once over all connections; more wait (default ${DEFAULT_LIMITS.payloadBudget >> 20}M)` })
    .option('max-connections', { type: 'number', describe: `connections open at once; more are refused (default ${DEFAULT_LIMITS.maxConnections})` })
    .option('request-timeout', { type: 'number', describe: `seconds a client may take to send a request it began; then it is dropped (default ${DEFAULT_LIMITS.requestTimeoutMs / 1000}, 0: none)` });
}

/** The limit flags given, as arguments for a `serve` child process. */
export function limitFlags(args: LimitArgs): string[] {
  const out: string[] = [];
  for (const k of ['payload-budget', 'max-connections', 'request-timeout'] as const) {
    if (args[k] !== undefined) out.push(`--${k}`, String(args[k]));
  }
  return out;
}

/** The server-wide limits from the flags (docs/operations.md); unset ones keep the defaults. */
export function serverLimits(args: LimitArgs): Omit<NbdServerOptions, 'exports' | 'log'> {
  const limits: Omit<NbdServerOptions, 'exports' | 'log'> = {};
  if (args['payload-budget'] !== undefined) limits.payloadBudget = parseSize(args['payload-budget'], '--payload-budget');
  const conns = args['max-connections'];
  if (conns !== undefined) {
    if (!Number.isInteger(conns) || conns < 1) throw new NbdraidError('EINVAL', '--max-connections', `must be a whole number of at least 1, got ${conns}`);
    limits.maxConnections = conns;
  }
  const secs = args['request-timeout'];
  if (secs !== undefined) {
    if (!Number.isFinite(secs) || secs < 0) throw new NbdraidError('EINVAL', '--request-timeout', `must be a number of seconds (0: none), got ${secs}`);
    limits.requestTimeoutMs = Math.round(secs * 1000);
  }
  return limits;
}

export type TlsArgs = Pick<ServeArgs, 'tls' | 'tls-certificates' | 'tls-psk' | 'tls-verify-peer'>;

/** The TLS flags (docs/tls.md), for serve and cluster. */
export function withTlsOptions<T>(y: Argv<T>): Argv<T & TlsArgs> {
  return y
    .option('tls', { choices: TLS_MODES, default: 'off' as TlsMode, describe: 'STARTTLS: off, on (plain and TLS clients) or require (TLS before any other option)' })
    .option('tls-certificates', { type: 'string', describe: 'directory with ca-cert.pem, server-cert.pem, server-key.pem (as nbdkit and qemu)' })
    .option('tls-psk', { type: 'string', describe: 'pre-shared keys file, USERNAME:HEXKEY lines (psktool format)' })
    .option('tls-verify-peer', { type: 'boolean', default: false, describe: 'require a client certificate signed by ca-cert.pem' }) as unknown as Argv<T & TlsArgs>;
}

/** The TLS flags given, as arguments for a `serve` child process (paths made absolute). */
export function tlsFlags(args: Partial<TlsArgs>): string[] {
  const out: string[] = [];
  if (args.tls !== undefined && args.tls !== 'off') out.push('--tls', args.tls);
  if (args['tls-certificates'] !== undefined) out.push('--tls-certificates', path.resolve(args['tls-certificates']));
  if (args['tls-psk'] !== undefined) out.push('--tls-psk', path.resolve(args['tls-psk']));
  if (args['tls-verify-peer']) out.push('--tls-verify-peer');
  return out;
}

export type LogFormatArgs = Pick<ServeArgs, 'log-format'>;

/** The --log-format flag (lib/log.ts), for serve and cluster; checked by parseLogFormat (exit 1, not yargs' 2). */
export function withLogFormatOption<T>(y: Argv<T>): Argv<T & LogFormatArgs> {
  return y.option('log-format', { type: 'string', default: 'human', describe: `log lines as ${LOG_FORMATS.join(' or ')} (one JSON object a line)` });
}

export const DEFAULT_LISTEN = '127.0.0.1:10809';

/** Parses HOST:PORT, [V6HOST]:PORT or a bare PORT (loopback). */
export function parseListen(spec: string): { host: string; port: number } {
  return parseAddress(spec, '--listen');
}

/** HOST:PORT, [V6HOST]:PORT or a bare PORT (loopback) for the flag `flag`. */
export function parseAddress(spec: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(spec) ?? /^()()(\d+)$/.exec(spec);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new NbdraidError('EINVAL', `${flag} ${spec}`, 'expected HOST:PORT, [IPV6]:PORT or PORT, e.g. 127.0.0.1:10809');
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** HOST:PORT with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The URI a client uses to reach `exportName` at a bound address. */
function exportUri(bound: ListenAddress, exportName: string, tls = false): string {
  const name = encodeURIComponent(exportName);
  if ('path' in bound) return `${tls ? 'nbds' : 'nbd'}+unix:///${name}?socket=${bound.path}`;
  const host = bound.host?.includes(':') ? `[${bound.host}]` : bound.host;
  return `${tls ? 'nbds' : 'nbd'}://${host}:${bound.port}/${name}`;
}

async function listenOn(server: NbdServer, args: ServeArgs): Promise<ListenAddress> {
  if (args.socket) {
    await server.listen({ path: args.socket });
    return { path: args.socket };
  }
  const want = parseListen(args.listen ?? DEFAULT_LISTEN);
  const bound = await server.listen(want);
  return { host: want.host, port: typeof bound === 'string' ? want.port : bound.port };
}

/** Serves until SIGINT/SIGTERM, then shuts down gracefully and closes the device. */
async function serveDevice(device: BlockDevice, exportName: string, args: ServeArgs, log: Log): Promise<void> {
  let tls;
  try {
    tls = serverTls(args);
  } catch (err) {
    await device.close();
    throw err;
  }
  const server = new NbdServer({
    ...serverLimits(args),
    exports: [{ name: exportName, device, readOnly: args['read-only'] }],
    tls,
    log: plainLines(log, 'nbd', 'warn'),
  });
  let bound: ListenAddress;
  try {
    bound = await listenOn(server, args);
  } catch (err) {
    await device.close();
    throw err;
  }
  const tlsNote = tls ? `, TLS ${tls.mode} with ${tls.kind === 'psk' ? 'PSK' : 'X.509 certificates'}` : '';
  const uri = exportUri(bound, exportName, tls?.mode === 'require');
  log({
    event: 'server.serving', message: `serving export '${exportName}' (${device.size} bytes${args['read-only'] ? ', read-only' : ''}${tlsNote}) on ${uri}`,
    fields: { export: exportName, size: device.size, readOnly: args['read-only'], tls: tls?.mode ?? 'off', uri },
  });
  const signal = await untilSignal();
  log({ event: 'server.stopping', message: `${signal}: finishing in-flight requests and stopping`, fields: { signal } });
  await server.close();
  await device.close();
}

/**
 * Resolves at the first SIGINT or SIGTERM. Later ones are ignored while the clean stop runs: a
 * Ctrl-C reaches every process of the terminal's group and `nbdraid cluster` forwards it as well,
 * so a controller gets it twice, and the second must not end it half-stopped (SIGKILL still does).
 */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let first: NodeJS.Signals | undefined;
    const on = (sig: NodeJS.Signals) => {
      if (first) return;
      first = sig;
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** The TLS flags, checked together and with their credentials loaded. */
export function serverTls(args: TlsArgs): ReturnType<typeof loadServerTls> {
  return loadServerTls({
    mode: args.tls, certificates: args['tls-certificates'], pskFile: args['tls-psk'], verifyPeer: args['tls-verify-peer'],
  });
}

/** Runs this process as a controller of array `name` until SIGINT/SIGTERM. */
async function serveArray(name: string, args: ServeArgs & { force?: boolean }, logFormat: LogFormat): Promise<void> {
  const tls = serverTls(args); // checked before anything is opened
  const listen: ListenAddress = args.socket ? { path: args.socket } : parseListen(args.listen ?? DEFAULT_LISTEN);
  const metrics = args.metrics === undefined ? undefined : parseAddress(args.metrics, '--metrics');
  const coordination = coordinationTarget(args.state, args.coordination, args.deadAfter === undefined ? undefined : args.deadAfter * 1000);
  const ctl = await Controller.start({ stateDir: args.state, coordination, arrayName: name, listen, force: args.force, serverLimits: { ...serverLimits(args), tls }, metrics, logFormat });
  const tlsNote = tls ? `, TLS ${tls.mode} with ${tls.kind === 'psk' ? 'PSK' : 'X.509 certificates'}` : '';
  const uri = exportUri(listen, name, tls?.mode === 'require');
  ctl.log({
    event: 'controller.serving', message: `controller ${ctl.id} serving array '${name}' (${ctl.volume.size} bytes${tlsNote}) on ${uri}`,
    fields: { size: ctl.volume.size, tls: tls?.mode ?? 'off', uri },
  });
  if (ctl.metrics) {
    const url = `http://${hostPort(ctl.metrics.address.address, ctl.metrics.address.port)}/metrics`;
    ctl.log({ event: 'metrics.listening', message: `controller ${ctl.id} metrics on ${url}`, fields: { url } });
  }
  const end = await Promise.race([untilSignal().then((signal) => ({ signal })), ctl.ended.then((lost) => ({ lost }))]);
  if ('lost' in end) {
    // Others may own its work now: it stopped all member I/O and must not come back as itself.
    throw new NbdraidError('ESTALE', `serve ${name}`, `controller ${ctl.id} lost its life on the coordination database (${end.lost}); it stopped all member I/O and exits: start it again to rejoin as a new controller`);
  }
  ctl.log({ event: 'controller.stopping', message: `${end.signal}: finishing in-flight requests, handing back partitions and leases`, fields: { signal: end.signal } });
  // A stop that waits at a fence which then seals would never end: the loss ends it instead.
  const stopped = await Promise.race([ctl.stop().then(() => undefined), ctl.ended]);
  if (stopped !== undefined) throw new NbdraidError('ESTALE', `serve ${name}`, `controller ${ctl.id} lost its life on the coordination database while stopping (${stopped}); it stopped all member I/O`);
}

async function serveFile(args: ServeArgs & { file: string }, logFormat: LogFormat): Promise<void> {
  const device = await FileDevice.open(args.file, { readOnly: args['read-only'], minimumBlockSize: args['block-size'] });
  await serveDevice(device, args.export ?? path.basename(args.file), args, lineLog(logFormat));
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve [name]',
  describe: 'serve an array (NAME) or a file or block device (--file) over NBD until interrupted',
  builder: (y: Argv) => withTlsOptions(withLogFormatOption(withLimitOptions(y)))
    .positional('name', { type: 'string', describe: 'array to serve (export NAME)' })
    .option('file', { type: 'string', describe: 'file or block device to serve' })
    .option('export', { type: 'string', describe: 'export name (default: the file name)' })
    .option('listen', { type: 'string', describe: `HOST:PORT to listen on ([::1]:PORT for IPv6; default ${DEFAULT_LISTEN})` })
    .option('socket', { type: 'string', describe: 'listen on this unix socket instead of TCP' })
    .option('read-only', { type: 'boolean', default: false, describe: 'refuse writes (--file only)' })
    .option('block-size', { type: 'number', describe: 'minimum block size advertised for --file (power of two, default 1); misaligned requests get EINVAL' })
    .option('force', { type: 'boolean', default: false, describe: 'assemble even with stale members or dirty and degraded (as mdadm --force)' })
    .option('metrics', { type: 'string', describe: 'serve Prometheus metrics at http://HOST:PORT/metrics (array controllers only)' })
    .conflicts('socket', 'listen') as unknown as Argv<ServeArgs>,
  handler: async (args) => {
    serverLimits(args); // bad limits are refused before anything is opened
    const logFormat = parseLogFormat(args['log-format'] ?? 'human');
    if (args.metrics !== undefined) parseAddress(args.metrics, '--metrics');
    if (args.file && args.metrics !== undefined) throw new NbdraidError('ENOTSUP', 'serve --file --metrics', 'metrics are served by array controllers (serve NAME); a plain file server has none');
    if (args.file) return serveFile({ ...args, file: args.file }, logFormat);
    if (args.name) return serveArray(args.name, args, logFormat);
    throw new NbdraidError('EINVAL', 'serve', 'name what to serve: an array NAME or --file PATH');
  },
};
