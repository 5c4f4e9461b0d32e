// Arrays for end-to-end tests and benchmarks, driven through the CLI as a user would: create a
// registered array of member files, run one controller (`serve NAME`) or a cluster of them
// (`cluster NAME`), and query it (`status`, `tasks`, `check`). Processes run in their own process
// group; stop() ends them (SIGTERM, then SIGKILL) and kill() SIGKILLs them (a crash).
import path from 'node:path';
import { runJson, runTool, type ToolResult } from './run-tool.js';
import { nbdraidCli } from './server-process.js';
import { freePorts } from './free-port.js';
import { type TestHooks, nbdUri, spawnServer, startReady } from './spawn-ready.js';

export interface ArraySpec {
  /** Directory holding the member files and the state directory. */
  dir: string;
  name: string;
  members?: number;
  /** Size of each member file, as the CLI takes it (e.g. '65M'); files missing are created this big. */
  memberSize: string;
  /** The members as `create` takes them (files, or nbd:// URIs of member servers); default DIR/m0, DIR/m1, ... */
  paths?: string[];
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
  const members = spec.paths ?? Array.from({ length: spec.members ?? 5 }, (_, i) => path.join(spec.dir, `m${i}`));
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
  const { s, endpoints } = await startReady(t, {
    name: `nbdraid ${arr.name}`, timeoutMs: READY_MS, graceMs: GRACE_MS,
    endpoints: async () => (await freePorts(n)).map((port) => ({ port })),
    launch: (e) => spawnServer(process.execPath, args(e.map((x) => x.port as number))),
  });
  const ports = endpoints.map((e) => e.port as number);
  return {
    pid: s.pid,
    ports,
    uri: (i = 0) => nbdUri(endpoints[i], arr.name),
    stderr: s.stderr,
    stop: () => s.stop(GRACE_MS),
    kill: () => s.kill(),
  };
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
