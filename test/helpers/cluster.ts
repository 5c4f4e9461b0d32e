// End-to-end tests of controller clusters: an array of sparse member files in a temp dir, the
// CLI run against its state directory, controller processes started one by one (so a test can
// SIGKILL a chosen one), fio crc32c verify jobs spread over several controllers, polling the
// coordination verbs, and reading members offline (data areas, XOR of survivors).
import fs from 'node:fs';
import path from 'node:path';
import { type FioResult, readReport, reportFile } from '../../harness/fio.js';
import { freePort } from '../../harness/free-port.js';
import { describeFailure, runJson, runTool, type ToolResult } from '../../harness/run-tool.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { type TestHooks, nbdUri, outputLine, spawnServer, startReady } from '../../harness/spawn-ready.js';

export const MiB = 1 << 20;

export interface ArraySpec {
  members?: number;
  /** Bytes per member file (created sparse). */
  memberSize: number;
  spare?: boolean;
  /** Members (and the spare) at these paths or NBD URIs instead of files named m0.. under dir. */
  at?: { members: string[]; spare?: string };
  /** Command prefix the CLI runs under (e.g. `ip netns exec HOST`, to reach members there). */
  runIn?: string[];
}

export interface TestArray {
  dir: string;
  state: string;
  name: string;
  members: string[];
  spare: string | undefined;
  /** Runs `nbdraid --state STATE ARGS...`; throws on a non-zero exit unless allowFailure. */
  cli(args: string[], opts?: { allowFailure?: boolean; timeoutMs?: number }): Promise<ToolResult>;
  /** Runs a read verb with --json and parses its output. */
  json<T>(args: string[]): Promise<T>;
}

/** Creates a RAID-5 array `name` of sparse member files (and a spare) under `dir`. */
export async function createArray(dir: string, spec: ArraySpec, name = 'vol'): Promise<TestArray> {
  const state = path.join(dir, 'state');
  const members = spec.at?.members ?? Array.from({ length: spec.members ?? 5 }, (_, i) => path.join(dir, `m${i}`));
  const [cmd, ...pre] = [...(spec.runIn ?? []), process.execPath];
  const cli = (args: string[], opts: { allowFailure?: boolean; timeoutMs?: number } = {}) =>
    runTool(cmd, [...pre, nbdraidCli, '--state', state, ...args], { timeoutMs: opts.timeoutMs ?? 60_000, allowFailure: opts.allowFailure });
  const json = <T>(args: string[]) => runJson<T>(cmd, [...pre, nbdraidCli, '--state', state, ...args, '--json']);
  const size = String(spec.memberSize);
  await cli(['create', name, ...members, '--size', size]);
  let spare: string | undefined;
  if (spec.spare || spec.at?.spare) {
    spare = spec.at?.spare ?? path.join(dir, 'spare');
    await cli(['add-spare', name, spare, '--size', size]);
  }
  return { dir, state, name, members, spare, cli, json };
}

export interface ControllerProcess {
  /** The controller's id in the coordination object. */
  id: number;
  pid: number;
  port: number;
  uri: string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL: no clean-up at all, as in a crash. */
  kill(): Promise<void>;
  /** SIGTERM and wait (SIGKILL after a grace period). */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;
const SERVING = /controller (\d+) serving array/;

/**
 * Starts `nbdraid serve NAME` on a free port of `host` (default loopback); resolves once it says it
 * is serving. `prefix` runs it under another command (strace killing it at a chosen system call,
 * or `ip netns exec HOST` with that host's address).
 */
export async function startController(t: TestHooks, arr: TestArray, extra: string[] = [], prefix: string[] = [], host = '127.0.0.1'): Promise<ControllerProcess> {
  const { s, endpoints: [at] } = await startReady(t, {
    name: `controller of ${arr.name}`, timeoutMs: START_TIMEOUT_MS, graceMs: 10_000, ready: () => outputLine(SERVING),
    endpoints: async () => [{ host, port: await freePort() }],
    launch: ([e]) => {
      const [cmd, ...pre] = [...prefix, process.execPath];
      return spawnServer(cmd, [...pre, nbdraidCli, '--state', arr.state, 'serve', arr.name, '--listen', `${host}:${e.port}`, ...extra]);
    },
  });
  return {
    id: Number(SERVING.exec(s.stderr())?.[1]),
    pid: s.pid, port: at.port as number, uri: nbdUri(at, arr.name), stderr: s.stderr, exited: s.exit,
    kill: () => s.kill(),
    stop: async () => { await s.stop(10_000); },
  };
}

/** Polls `probe` until it returns a value other than undefined; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// --- coordination verbs --------------------------------------------------------------------

export interface TaskJson {
  task: { id: number; kind: string; state: string; reason: string | null; result: unknown; dataset: unknown; initiator: number | null; partitionsTotal: number; partitionsDone: number };
  counts: Record<'READY' | 'IN_PROGRESS' | 'COMPLETE' | 'FAILED', number>;
  stripesTotal: number;
  stripesDone: number;
  inProgress: { idx: number; owner: number; stripeStart: number; stripeEnd: number; checkpoint: unknown }[];
}

export interface EventJson {
  id: number; controller: number | null; actor: string; kind: string; taskId: number | null; partitionIdx: number | null; detail: unknown;
}

const allTasks = (arr: TestArray): Promise<TaskJson[]> => arr.json<TaskJson[]>(['tasks', '--all']);

export async function taskOf(arr: TestArray, kind: string): Promise<TaskJson | undefined> {
  return (await allTasks(arr)).filter((t) => t.task.kind === kind).pop();
}

export const taskEvents = (arr: TestArray, taskId: number): Promise<EventJson[]> =>
  arr.json<EventJson[]>(['events', '--task', String(taskId), '--limit', '100000']);

/** Waits until the newest task of `kind` has ended; returns it (whatever its end state). */
export function waitTaskEnd(arr: TestArray, kind: string, timeoutMs = 120_000): Promise<TaskJson> {
  return waitFor(`the ${kind} task to end`, async () => {
    const t = await taskOf(arr, kind);
    return t && ['DONE', 'FAILED', 'CANCELLED'].includes(t.task.state) ? t : undefined;
  }, timeoutMs);
}

export interface CheckResult {
  task: number;
  state: string;
  reason: string | null;
  result: { mismatches: number; list: { stripe: number; volumeOffset: number; memberOffset: number; parityMember: number }[]; truncated: boolean } | null;
}

/** `nbdraid check|repair NAME --json` (waits for the task). */
export async function scrub(arr: TestArray, kind: 'check' | 'repair'): Promise<CheckResult> {
  const r = await arr.cli([kind, arr.name, '--json'], { allowFailure: true, timeoutMs: 120_000 });
  try {
    return JSON.parse(r.stdout) as CheckResult;
  } catch {
    throw new Error(describeFailure(r, 'printed no JSON result'));
  }
}

// --- fio --------------------------------------------------------------------------------

export interface FioRange { uri: string; offset: number; size: number }

export interface FioVerifyOptions {
  /** Only read back and verify what an earlier run with the same ranges wrote. */
  verifyOnly?: boolean;
  /** Bytes per second each job may write (stretches the write phase over a scenario). */
  writeRate?: number;
  /** Upper bound of each job's run time (s). */
  runtime?: number;
  allowFailure?: boolean;
  /** Command prefix fio runs under (e.g. `ip netns exec CLIENT`). */
  runIn?: string[];
}

export interface FioProcess {
  /** The report once fio exits (rejects when fio fails and allowFailure is not set). */
  result: Promise<FioResult>;
  /** Whether fio has exited. */
  exited(): boolean;
  /** SIGKILLs fio (its nbd engine spins rather than exits when a server dies under it). */
  kill(): Promise<void>;
}

/**
 * One fio process, one job per range (each its own NBD connection to its own URI): random writes
 * of crc32c-tagged blocks of mixed sizes over the range, a FLUSH at the end, then every block read
 * back and verified. Same ranges and seeds with verifyOnly re-check the data later.
 */
export function startFio(ranges: FioRange[], opts: FioVerifyOptions = {}): FioProcess {
  const report = reportFile();
  const args = [
    ...report.args, '--ioengine=nbd', '--thread', '--rw=randwrite', '--bsrange=4k-128k',
    '--blockalign=4k', '--iodepth=8', '--verify=crc32c', '--verify_fatal=1', '--verify_dump=0', '--do_verify=1',
    `--verify_only=${opts.verifyOnly ? 1 : 0}`, '--randrepeat=1', '--end_fsync=1', `--runtime=${opts.runtime ?? 120}`,
  ];
  if (opts.writeRate) args.push(`--rate=,${opts.writeRate}`);
  ranges.forEach((r, i) => args.push(`--name=j${i}`, `--uri=${r.uri}`, `--offset=${r.offset}`, `--size=${r.size}`));
  const [cmd, ...pre] = [...(opts.runIn ?? []), 'fio'];
  const fio = spawnServer(cmd, [...pre, ...args]);
  const started = Date.now();
  const limit = setTimeout(() => void fio.kill(), ((opts.runtime ?? 120) + 60) * 1000);
  const result = fio.exit.then(({ code, signal }) => {
    clearTimeout(limit);
    const r: ToolResult = { command: `fio ${args.join(' ')}`, code, signal, stdout: '', stderr: fio.stderr(), ms: Date.now() - started };
    try {
      // A fio killed under load (allowFailure) may have written no report: that is a failed run.
      return readReport(report.path, r, opts.allowFailure ?? false, opts.allowFailure ? 'failed' : 'error');
    } finally {
      report.remove();
    }
  });
  return {
    result,
    exited: fio.gone,
    kill: async () => {
      await fio.kill();
      await result.catch(() => undefined);
    },
  };
}

/** startFio, waiting for the report. */
export function fioVerify(ranges: FioRange[], opts: FioVerifyOptions = {}): Promise<FioResult> {
  return startFio(ranges, opts).result;
}

// --- members, offline ----------------------------------------------------------------------

export interface MemberLayout { dataOffset: number; chunk: number; members: number; layout: string }

/** Data offset, chunk, member count and layout from `nbdraid examine MEMBER --json`. */
export async function memberLayout(arr: TestArray, member: string): Promise<MemberLayout> {
  const [e] = await arr.json<{ dataOffset: number; chunkSize: number; raidDevices: number; layout: string }[]>(['examine', member]);
  return { dataOffset: e.dataOffset * 512, chunk: e.chunkSize * 1024, members: e.raidDevices, layout: e.layout };
}

/** The data area of a member file (from its data offset, `length` bytes). */
export function readDataArea(file: string, dataOffset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, buf, done, length - done, dataOffset + done);
      if (n === 0) break; // past the end of a sparse file: zeros
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** Inverts a few bytes of `file`'s chunk in each of `stripes` (at a different spot in each). */
export function flipBytes(file: string, dataOffset: number, chunk: number, stripes: number[]): void {
  const fd = fs.openSync(file, 'r+');
  try {
    for (const s of stripes) {
      const at = dataOffset + s * chunk + ((s * 7919) % (chunk - 16));
      const buf = Buffer.alloc(3);
      fs.readSync(fd, buf, 0, buf.length, at);
      for (let i = 0; i < buf.length; i++) buf[i] ^= 0xa5;
      fs.writeSync(fd, buf, 0, buf.length, at);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** XOR of equally long buffers (a multiple of 4 bytes, as data areas are). */
export function xorAll(bufs: Buffer[]): Buffer {
  const out = Buffer.alloc(bufs[0].length);
  const o = new Int32Array(out.buffer, out.byteOffset, out.length >> 2);
  for (const b of bufs) {
    const copy = Buffer.from(b); // own, aligned memory for the 32-bit view
    const v = new Int32Array(copy.buffer, copy.byteOffset, copy.length >> 2);
    for (let i = 0; i < o.length; i++) o[i] ^= v[i];
  }
  return out;
}

/** Byte offsets (in a data area) of the first few chunks where `a` and `b` differ. */
export function differingChunks(a: Buffer, b: Buffer, chunk: number, max = 10): number[] {
  const out: number[] = [];
  for (let o = 0; o < a.length && out.length < max; o += chunk) {
    if (!a.subarray(o, o + chunk).equals(b.subarray(o, o + chunk))) out.push(o);
  }
  return out;
}

/**
 * md's left-symmetric RAID-5 layout, written out here on its own (not taken from lib/raid) so the
 * tests check the product against an independent reading of the format.
 */
export const leftSymmetric = {
  parityDisk: (stripe: number, members: number): number => members - 1 - (stripe % members),
  /** Volume offset of the start of `disk`'s chunk in `stripe`, or -1 when it holds parity. */
  chunkVolumeOffset(stripe: number, disk: number, members: number, chunk: number): number {
    const p = members - 1 - (stripe % members);
    if (disk === p) return -1;
    const d = (disk - p - 1 + members) % members;
    return (stripe * (members - 1) + d) * chunk;
  },
};

/**
 * With the cluster stopped: what the spare rebuilt into `slot` holds against the XOR of the other
 * members' data areas (what the slot must hold). Returns the first differing chunks (empty when
 * equal) and whether the old, failed member still equals that XOR.
 */
export async function compareRebuilt(arr: TestArray, slot: number, memberSize: number): Promise<{ bad: number[]; oldMemberEqual: boolean }> {
  const geo = await memberLayout(arr, arr.spare!);
  const area = Math.floor((memberSize - geo.dataOffset) / geo.chunk) * geo.chunk;
  const expected = xorAll(arr.members.filter((_, i) => i !== slot).map((m) => readDataArea(m, geo.dataOffset, area)));
  const bad = differingChunks(readDataArea(arr.spare!, geo.dataOffset, area), expected, geo.chunk);
  return { bad, oldMemberEqual: readDataArea(arr.members[slot], geo.dataOffset, area).equals(expected) };
}
