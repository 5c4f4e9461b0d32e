// Starts an NBD server as a child process for end-to-end tests and benchmarks: nbdraid
// (`node dist/cmd/nbdraid.js serve --file ...` or any other `serve` invocation) or, as a
// reference, nbdkit's file plugin.
// start* returns once the server answers with the NBD greeting; stop() ends it (SIGTERM, then
// SIGKILL) and is also registered as a teardown. The server's stderr is kept for failure messages.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Endpoint, type Spawned, type TestHooks, nbdUri, spawnServer, startReady } from './spawn-ready.js';

export { spawnServer, type Spawned, type TestHooks } from './spawn-ready.js';

/** The repository root (this file runs as dist/harness/server-process.js). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const nbdraidCli = path.join(repoRoot, 'dist/cmd/nbdraid.js');

export interface ServerOptions {
  /** The file (or block device) to serve. */
  file: string;
  /** Export name; nbdraid's default applies when omitted. */
  exportName?: string;
  /** Serve on this unix socket instead of a free loopback TCP port. */
  socket?: string;
  readOnly?: boolean;
  /** Minimum block size the export advertises (`serve --block-size`). */
  blockSize?: number;
  /** Node flags for nbdraid (placed before the script), e.g. --cpu-prof. */
  nodeArgs?: string[];
}

export interface ServeOptions {
  /** What follows `nbdraid serve`, e.g. ['NAME', '--state', DIR]; the listen address is appended. */
  args: string[];
  /** The export name clients use (for uri()). */
  exportName: string;
  socket?: string;
  nodeArgs?: string[];
  env?: Record<string, string>;
}

export interface ServerProcess {
  readonly pid: number;
  readonly port: number | undefined;
  readonly socket: string | undefined;
  /** nbd:// or nbd+unix:// URI of the named export (default: the one it was started with). */
  uri(exportName?: string): string;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  /** Stops the server; resolves with its exit code (null if it died by signal). */
  stop(): Promise<number | null>;
}

/** `nbdraid serve --file FILE [--export NAME] [--read-only]`. */
export function startNbdraid(t: TestHooks | null, opts: ServerOptions): Promise<ServerProcess> {
  const args = ['--file', opts.file, '--state', path.join(path.dirname(opts.file), '.nbdraid-state')];
  if (opts.exportName !== undefined) args.push('--export', opts.exportName);
  if (opts.readOnly) args.push('--read-only');
  if (opts.blockSize) args.push('--block-size', String(opts.blockSize));
  return startNbdraidServe(t, { args, exportName: opts.exportName ?? path.basename(opts.file), socket: opts.socket, nodeArgs: opts.nodeArgs });
}

/** Any `nbdraid serve ...` invocation (an array, a file), on a free port or the given socket. */
export function startNbdraidServe(t: TestHooks | null, opts: ServeOptions): Promise<ServerProcess> {
  return start(t, 'nbdraid', opts, (e) => {
    const where = e.socket ? ['--socket', e.socket] : ['--listen', `127.0.0.1:${e.port}`];
    return spawnServer(process.execPath, [...(opts.nodeArgs ?? []), nbdraidCli, 'serve', ...opts.args, ...where], opts.env);
  });
}

export function startNbdkit(t: TestHooks | null, opts: ServerOptions): Promise<ServerProcess> {
  return start(t, 'nbdkit', opts, (e) => {
    const args = ['-f', '--exit-with-parent'];
    if (opts.readOnly) args.push('-r');
    if (e.socket) args.push('-U', e.socket);
    else args.push('-i', '127.0.0.1', '-p', String(e.port));
    if (opts.exportName !== undefined) args.push('-e', opts.exportName);
    args.push('file', opts.file);
    return spawnServer('nbdkit', args);
  });
}

async function start(t: TestHooks | null, name: string, opts: { socket?: string; exportName?: string }, launch: (e: Endpoint) => Spawned): Promise<ServerProcess> {
  const endpoints = opts.socket ? async () => [{ socket: opts.socket }] : undefined;
  const { s, endpoints: [e] } = await startReady(t, { name, endpoints, launch: ([at]) => launch(at) });
  return {
    pid: s.pid,
    port: e.port,
    socket: e.socket,
    uri: (exportName = opts.exportName ?? '') => nbdUri(e, exportName),
    stderr: s.stderr,
    stop: () => s.stop(),
  };
}
