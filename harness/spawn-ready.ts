// Starting a server process for tests and benchmarks, in one place: spawn it in its own process
// group (recorded, so it dies with this process), keep the tail of its output, wait until it is
// ready (the NBD greeting on every endpoint, or a line of its output), start again on other ports
// when one was taken between the pick and the bind, and stop it (SIGTERM, SIGKILL after a grace
// period) or kill it (SIGKILL, a crash). server-process.ts, raid-array.ts and cluster.ts build on it.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { safeTeardown, trackGroup } from './cleanup.js';
import { freePort } from './free-port.js';
import { killGroup, toolPath } from './run-tool.js';

/** The slice of tap's Test these helpers need. */
export interface TestHooks {
  teardown(fn: () => void | Promise<void>): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
}

/** Where a server listens: a TCP port (on 127.0.0.1 unless `host`) or a unix socket. */
export interface Endpoint {
  host?: string;
  port?: number;
  socket?: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the process wrote to stdout and stderr so far (the last MiB or so). */
  stderr(): string;
  /** The exit code once the process is gone (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Exit code and signal once the process is gone. */
  readonly exit: Promise<Exit>;
  gone(): boolean;
  /** SIGTERM to its group, SIGKILL after `graceMs`; resolves with the exit code. Later calls share the first. */
  stop(graceMs?: number): Promise<number | null>;
  /** SIGKILL to its group; resolves once it is gone. */
  kill(): Promise<void>;
}

const OUTPUT_KEEP = 1 << 20;
const STOP_GRACE_MS = 5_000;

/** Spawns `cmd` in its own process group with the tools' PATH, keeping the tail of its output. */
export function spawnServer(cmd: string, args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(cmd, args, { env: { ...process.env, PATH: toolPath(), ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  trackGroup(child);
  let out = '';
  const keep = (b: Buffer): void => {
    out += b.toString();
    if (out.length > OUTPUT_KEEP) out = out.slice(-(OUTPUT_KEEP >> 1));
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', keep);
  child.once('error', (e) => keep(Buffer.from(`cannot start ${cmd}: ${e.message}\n`)));
  const exit = new Promise<Exit>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  let stopping: Promise<number | null> | undefined;
  const stop = async (graceMs: number): Promise<number | null> => {
    if (!gone()) {
      killGroup(child.pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), graceMs);
      await exit;
      clearTimeout(timer);
    }
    return child.exitCode;
  };
  return {
    child,
    pid: child.pid as number,
    stderr: () => out,
    exited: exit.then((e) => e.code),
    exit,
    gone,
    stop: (graceMs = STOP_GRACE_MS) => (stopping ??= stop(graceMs)),
    kill: async () => {
      if (!gone()) killGroup(child.pid, 'SIGKILL');
      await exit;
    },
  };
}

/** Waits until `s` is ready or `deadline` (ms since the epoch); undefined when ready, else why not. */
export type Readiness = (s: Spawned, deadline: number) => Promise<string | undefined>;

const POLL_MS = 50;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Ready once every endpoint answers with the NBD greeting. */
export function nbdGreeting(endpoints: Endpoint[]): Readiness {
  return async (s, deadline) => {
    const waiting = new Set(endpoints);
    while (Date.now() < deadline) {
      if (s.gone()) return `exited with ${s.child.exitCode ?? s.child.signalCode}`;
      for (const e of [...waiting]) if (await greets(e)) waiting.delete(e);
      if (waiting.size === 0) return undefined;
      await sleep(POLL_MS);
    }
    return 'no NBD greeting in time';
  };
}

/** Ready once the process has written a line matching `re`. */
export function outputLine(re: RegExp): Readiness {
  return async (s, deadline) => {
    while (Date.now() < deadline) {
      if (re.test(s.stderr())) return undefined;
      if (s.gone()) return `exited with ${s.child.exitCode ?? s.child.signalCode}`;
      await sleep(POLL_MS);
    }
    return `no line matching ${re} in time`;
  };
}

/** Connects, reads the first 8 bytes and checks for NBDMAGIC. */
function greets(e: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = e.socket ? net.connect(e.socket) : net.connect(e.port as number, e.host ?? '127.0.0.1');
    let got = Buffer.alloc(0);
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(2000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('end', () => done(false));
    sock.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length >= 8) done(got.subarray(0, 8).toString('latin1') === 'NBDMAGIC');
    });
  });
}

export interface StartSpec {
  /** For messages and the teardown's name. */
  name: string;
  /** Where it is to listen, picked afresh for each attempt (default: one free loopback port). */
  endpoints?: () => Promise<Endpoint[]>;
  launch(endpoints: Endpoint[]): Spawned;
  /** Default: the NBD greeting on every endpoint. */
  ready?: (endpoints: Endpoint[]) => Readiness;
  timeoutMs?: number;
  /** Grace period of the teardown's stop before SIGKILL. */
  graceMs?: number;
}

const ATTEMPTS = 3;

/**
 * Launches until ready (another attempt on fresh ports when a port was taken in between); with a
 * test, stops the process at its teardown and shows its output when the test failed.
 */
export async function startReady(t: TestHooks | null, spec: StartSpec): Promise<{ s: Spawned; endpoints: Endpoint[] }> {
  for (let attempt = 1; ; attempt++) {
    const endpoints = spec.endpoints ? await spec.endpoints() : [{ port: await freePort() }];
    const s = spec.launch(endpoints);
    const why = await (spec.ready ?? nbdGreeting)(endpoints)(s, Date.now() + (spec.timeoutMs ?? 15_000));
    if (why === undefined) {
      if (t) stopAtTeardown(t, spec, s);
      return { s, endpoints };
    }
    await s.stop(spec.graceMs);
    const portTaken = /EADDRINUSE|in use/i.test(s.stderr()) && endpoints.some((e) => e.port !== undefined);
    if (!portTaken || attempt >= ATTEMPTS) throw new Error(`${spec.name} did not start (${why}); its output:\n${s.stderr()}`);
  }
}

function stopAtTeardown(t: TestHooks, spec: StartSpec, s: Spawned): void {
  safeTeardown(t, `stop ${spec.name} (pid ${s.pid})`, async () => {
    await s.stop(spec.graceMs);
    if (!t.passing()) t.comment(`${spec.name} (pid ${s.pid}) output:\n${s.stderr()}`);
  });
}

/** nbd:// or nbd+unix:// URI of an export at `e`. */
export function nbdUri(e: Endpoint, exportName: string): string {
  const name = encodeURIComponent(exportName);
  return e.socket ? `nbd+unix:///${name}?socket=${e.socket}` : `nbd://${e.host ?? '127.0.0.1'}:${e.port}/${name}`;
}
