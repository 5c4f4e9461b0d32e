// Arrays for end-to-end tests and benchmarks, driven through the CLI as a user would: create a
// registered array of member files, run one controller (`serve NAME`) or a cluster of them
// (`cluster NAME`), and query it (`status`, `tasks`, `check`). Processes run in their own process
// group; stop() ends them (SIGTERM, then SIGKILL) and kill() SIGKILLs them (a crash).
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './free-port.js';
import { safeTeardown } from './cleanup.js';
import { killGroup, runJson, runTool, type ToolResult } from './run-tool.js';
import { nbdraidCli, spawnServer, type TestHooks } from './server-process.js';

export interface ArraySpec {
  /** Directory holding the member files and the state directory. */
  dir: string;
  name: string;
  members?: number;
  /** Size of each member file, as the CLI takes it (e.g. '65M'). */
  memberSize: string;
  chunk?: string;
}

export interface TestArray {
  name: string;
  state: string;
  members: string[];
  /** Runs `nbdraid --state STATE ARGS...`; throws on a non-zero exit. */
  cli(...args: string[]): Promise<ToolResult>;
  /** Runs a read verb with --json and parses its output. */
  json<T>(...args: string[]): Promise<T>;
}

export interface ArrayProcess {
  readonly pid: number;
  /** Ports of the controllers, controller i at ports[i]. */
  readonly ports: number[];
  uri(controller?: number): string;
  stderr(): string;
  /** SIGTERM (graceful), SIGKILL after a grace period; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL to the whole process group: an unclean stop of every controller. */
  kill(): Promise<void>;
}

export interface TaskInfo {
  task: { id: number; kind: string; state: string; createdAt: number; finishedAt: number | null; result: unknown; reason: string | null };
  bytes: number;
  stripesDone: number;
  stripesTotal: number;
}

export async function createArray(spec: ArraySpec): Promise<TestArray> {
  const state = path.join(spec.dir, 'state');
  const members = Array.from({ length: spec.members ?? 5 }, (_, i) => path.join(spec.dir, `m${i}`));
  const arr: TestArray = {
    name: spec.name, state, members,
    cli: (...args) => runTool(process.execPath, [nbdraidCli, '--state', state, ...args], { timeoutMs: 60_000, cwd: spec.dir }),
    json: (...args) => runJson(process.execPath, [nbdraidCli, '--state', state, ...args, '--json'], { timeoutMs: 60_000, cwd: spec.dir }),
  };
  await arr.cli('create', spec.name, ...members, '--size', spec.memberSize, '--chunk', spec.chunk ?? '512K');
  return arr;
}

const READY_MS = 30_000;
const GRACE_MS = 10_000;

/** One controller: `nbdraid serve NAME --listen 127.0.0.1:PORT`. */
export function serveArray(t: TestHooks | null, arr: TestArray, nodeArgs: string[] = []): Promise<ArrayProcess> {
  return launch(t, arr, 1, (ports) => [...nodeArgs, nbdraidCli, '--state', arr.state, 'serve', arr.name, '--listen', `127.0.0.1:${ports[0]}`]);
}

/** N controllers: `nbdraid cluster NAME --controllers N --listen 127.0.0.1:PORT` (controller i on PORT+i), plus `extra` flags. */
export function clusterArray(t: TestHooks | null, arr: TestArray, controllers: number, extra: string[] = []): Promise<ArrayProcess> {
  return launch(t, arr, controllers, (ports) =>
    [nbdraidCli, '--state', arr.state, 'cluster', arr.name, '--controllers', String(controllers), '--listen', `127.0.0.1:${ports[0]}`, ...extra]);
}

async function launch(t: TestHooks | null, arr: TestArray, n: number, args: (ports: number[]) => string[]): Promise<ArrayProcess> {
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(n);
    const { child, stderr, exited } = spawnServer(process.execPath, args(ports));
    const ready = await waitAll(child, ports);
    const proc = wrap(child, ports, arr.name, stderr, exited);
    if (ready) {
      if (t) {
        safeTeardown(t, `stop nbdraid ${arr.name} (pid ${proc.pid})`, async () => {
          await proc.stop();
          if (!t.passing()) t.comment(`nbdraid ${arr.name} output:\n${stderr()}`);
        });
      }
      return proc;
    }
    await proc.stop();
    if (!/EADDRINUSE/.test(stderr()) || attempt >= 3) throw new Error(`nbdraid ${arr.name} did not start on ports ${ports.join(',')}:\n${stderr()}`);
  }
}

function wrap(child: ChildProcess, ports: number[], name: string, stderr: () => string, exited: Promise<number | null>): ArrayProcess {
  let stopping: Promise<number | null> | undefined;
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    pid: child.pid as number,
    ports,
    uri: (i = 0) => `nbd://127.0.0.1:${ports[i]}/${encodeURIComponent(name)}`,
    stderr,
    stop: () => (stopping ??= (async () => {
      if (!gone()) {
        killGroup(child.pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      return child.exitCode;
    })()),
    kill: async () => {
      killGroup(child.pid, 'SIGKILL');
      await exited;
      stopping ??= Promise.resolve(null);
    },
  };
}

/** `n` consecutive free loopback ports (a cluster listens on PORT..PORT+n-1). */
async function freePorts(n: number): Promise<number[]> {
  for (;;) {
    const base = n === 1 ? await freePort() : 20_000 + Math.floor(Math.random() * 40_000);
    const ports = Array.from({ length: n }, (_, i) => base + i);
    if (n === 1 || (await Promise.all(ports.map(portFree))).every(Boolean)) return ports;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Polls every port for the NBD greeting until all answer, the process exits, or time runs out. */
async function waitAll(child: ChildProcess, ports: number[]): Promise<boolean> {
  const deadline = Date.now() + READY_MS;
  const waiting = new Set(ports);
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    for (const p of [...waiting]) if (await greets(p)) waiting.delete(p);
    if (waiting.size === 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
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

/** Every task of the array (finished ones too), oldest first. */
export async function tasksOf(arr: TestArray): Promise<TaskInfo[]> {
  const all = await arr.json<TaskInfo[]>('tasks', '--all');
  return all.filter((x) => (x.task as { arrayName?: string }).arrayName === arr.name);
}

/**
 * Waits until a task of `kind` created after `afterId` has finished (any final state) and returns
 * it; polls every `everyMs`, gives up after `timeoutMs`.
 */
export async function waitTask(arr: TestArray, kind: string, afterId: number, timeoutMs: number, everyMs = 250): Promise<TaskInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = (await tasksOf(arr)).find((x) => x.task.kind === kind && x.task.id > afterId);
    if (hit && hit.task.finishedAt !== null) return hit;
    if (Date.now() > deadline) throw new Error(`no ${kind} task of ${arr.name} finished within ${timeoutMs} ms (last seen: ${JSON.stringify(hit?.task)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Highest task id of the array so far (0 when none). */
export async function lastTaskId(arr: TestArray): Promise<number> {
  return Math.max(0, ...(await tasksOf(arr)).map((x) => x.task.id));
}
