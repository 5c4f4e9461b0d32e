// Starts an NBD server as a child process for end-to-end tests and benchmarks: nbdraid
// (`node dist/cmd/nbdraid.js serve --file ...` or any other `serve` invocation) or, as a
// reference, nbdkit's file plugin.
// start* returns once the server answers with the NBD greeting; stop() ends it (SIGTERM, then
// SIGKILL) and is also registered as a teardown. The server's stderr is kept for failure messages.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { safeTeardown, trackGroup } from './cleanup.js';
import { freePort } from './free-port.js';
import { killGroup, toolPath } from './run-tool.js';

/** The repository root (this file runs as dist/test/helpers/server-process.js). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
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

/** The slice of tap's Test this helper needs. */
export interface TestHooks {
  teardown(fn: () => void | Promise<void>): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

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
  return startWithRetry(t, { socket: opts.socket, exportName: opts.exportName }, 'nbdraid', (endpoint) => {
    const args = [...(opts.nodeArgs ?? []), nbdraidCli, 'serve', ...opts.args];
    args.push(...endpointArgs(endpoint, '--listen', '--socket'));
    return spawnServer(process.execPath, args, opts.env);
  });
}

export function startNbdkit(t: TestHooks | null, opts: ServerOptions): Promise<ServerProcess> {
  return startWithRetry(t, opts, 'nbdkit', (endpoint) => {
    const args = ['-f', '--exit-with-parent'];
    if (opts.readOnly) args.push('-r');
    if (endpoint.socket) args.push('-U', endpoint.socket);
    else args.push('-i', '127.0.0.1', '-p', String(endpoint.port));
    if (opts.exportName !== undefined) args.push('-e', opts.exportName);
    args.push('file', opts.file);
    return spawnServer('nbdkit', args);
  });
}

interface Endpoint {
  port?: number;
  socket?: string;
}

function endpointArgs(e: Endpoint, listenFlag: string, socketFlag: string): string[] {
  return e.socket ? [socketFlag, e.socket] : [listenFlag, `127.0.0.1:${e.port}`];
}

export interface Spawned {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
}

/** Spawns a server in its own process group, keeping the tail of its output. */
export function spawnServer(cmd: string, args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(cmd, args, {
    env: { ...process.env, PATH: toolPath(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  trackGroup(child);
  let err = '';
  const keep = (b: Buffer): void => {
    err += b.toString();
    if (err.length > 1 << 20) err = err.slice(-(1 << 19));
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  child.once('error', (e) => keep(Buffer.from(`cannot start ${cmd}: ${e.message}\n`)));
  return { child, stderr: () => err, exited };
}

/** A free port can be taken by someone else before the server binds it: retry a few times. */
interface Where {
  socket?: string;
  exportName?: string;
}

async function startWithRetry(
  t: TestHooks | null, opts: Where, name: string, launch: (e: Endpoint) => Spawned,
): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    const endpoint: Endpoint = opts.socket ? { socket: opts.socket } : { port: await freePort() };
    const s = launch(endpoint);
    const ready = await waitReady(s, endpoint);
    if (ready === 'ready') return wrap(t, opts, name, s, endpoint);
    await stopSpawned(s);
    const inUse = /EADDRINUSE|in use/i.test(s.stderr());
    if (!inUse || attempt >= 3 || opts.socket) {
      throw new Error(`${name} did not start (${ready}); its stderr:\n${s.stderr()}`);
    }
  }
}

function wrap(t: TestHooks | null, opts: Where, name: string, s: Spawned, e: Endpoint): ServerProcess {
  let stopping: Promise<number | null> | undefined;
  const server: ServerProcess = {
    pid: s.child.pid as number,
    port: e.port,
    socket: e.socket,
    uri: (exportName = opts.exportName ?? '') => nbdUri(e, exportName),
    stderr: s.stderr,
    stop: () => (stopping ??= stopSpawned(s)),
  };
  if (t) {
    safeTeardown(t, `stop ${name} (pid ${server.pid})`, async () => {
      await server.stop();
      if (!t.passing()) t.comment(`${name} stderr:\n${s.stderr()}`);
    });
  }
  return server;
}

function nbdUri(e: Endpoint, exportName: string): string {
  const name = encodeURIComponent(exportName);
  return e.socket ? `nbd+unix:///${name}?socket=${e.socket}` : `nbd://127.0.0.1:${e.port}/${name}`;
}

/** Polls until the server sends the NBD greeting, the process exits, or time runs out. */
async function waitReady(s: Spawned, e: Endpoint): Promise<string> {
  let exited = false;
  void s.exited.then(() => (exited = true));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) return `exited with code ${s.child.exitCode ?? s.child.signalCode}`;
    if (await greets(e)) return 'ready';
    await new Promise((r) => setTimeout(r, 50));
  }
  return `no NBD greeting within ${READY_TIMEOUT_MS} ms`;
}

/** Connects, reads the first 8 bytes and checks for NBDMAGIC. */
function greets(e: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = e.socket ? net.connect(e.socket) : net.connect(e.port as number, '127.0.0.1');
    let got = Buffer.alloc(0);
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(2000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length >= 8) done(got.subarray(0, 8).toString('latin1') === 'NBDMAGIC');
    });
    sock.on('end', () => done(false));
  });
}

async function stopSpawned(s: Spawned): Promise<number | null> {
  if (s.child.exitCode === null && s.child.signalCode === null) {
    killGroup(s.child.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(s.child.pid, 'SIGKILL'), STOP_GRACE_MS);
    await s.exited;
    clearTimeout(timer);
  }
  return s.child.exitCode;
}
