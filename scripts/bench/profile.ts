// `npm run bench -- profile`: where the server's CPU goes, row by row. For each throughput row of
// the transport and raid benchmarks (their own fio jobs), a fresh nbdraid runs with
// `--cpu-prof` for one run of that job and is stopped with SIGTERM, so its profile covers that row
// only; one more row profiles the controller doing a rebuild (small members). Each row shows the
// server's CPU seconds per GiB moved (rebuilt, for the rebuild), the self time of its I/O thread
// by category ((garbage collector), (program) = native code and syscalls, (idle), our files,
// node:... modules, packages) and the top functions, as shares of the profile's sample time.
// Other threads (the coordination thread) are summarised beside it. JSON under bench-results/,
// the profiles under bench-results/profiles/profile-TIMESTAMP/.
// Environment: BENCH_RUNTIME (seconds per row, default 5), BENCH_SIZE (transport file bytes,
// default 1 GiB), BENCH_REBUILD_GIB (data per member of the rebuild row, default 0.25).
import fs from 'node:fs';
import path from 'node:path';
import { runFio } from '../../harness/fio.js';
import { type ArrayProcess, type TestArray, createArray, serveArray } from '../../harness/raid-array.js';
import { runTool } from '../../harness/run-tool.js';
import { repoRoot, startNbdraid } from '../../harness/server-process.js';
import { type CpuProfile, type FunctionCost, type ProfileSummary, type Window, mergeProfiles, readProfile, summarise } from './_cpuprofile.js';
import { cpuTimes, saveResult, scratch, table } from './_common.js';
import type { Side } from './_compare.js';
import * as raid from './raid.js';
import { sourceLineMapper } from './_sourcemap.js';
import * as transport from './transport.js';

interface ProfiledRow {
  label: string;
  /** Bytes the row moved (client I/O, or data rebuilt). */
  bytes: number;
  seconds: number;
  cpuSeconds: number;
  /** The part of cpuSeconds spent in the kernel (syscalls, page-cache copies), any thread. */
  systemSeconds: number;
  cpuPerGiB: number;
  profileDir: string;
  /** The serving processes' main (I/O) threads. */
  io: ProfileSummary;
  /** Their other threads (coordination), together. */
  others: ProfileSummary | null;
}

/** A started server: its process, or with `pids` several (each one's descendants count too). */
interface Served { pid: number; pids?: number[]; stop(): Promise<unknown> }

/** What one row runs against its fresh server: resolves with the bytes moved. */
type Work<S> = (server: S) => Promise<number>;

const sourceLine = sourceLineMapper();
const nodeFlags = (dir: string): string[] => ['--cpu-prof', `--cpu-prof-dir=${dir}`];

/** Profile files of `dir` by thread kind; node names them CPU.DATE.TIME.PID.TID.SEQ.cpuprofile, TID 0 the main thread. */
function profilesIn(dir: string): { main: CpuProfile[]; others: CpuProfile[] } {
  const out = { main: [] as CpuProfile[], others: [] as CpuProfile[] };
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
    const tid = Number(f.split('.')[4]);
    (tid === 0 ? out.main : out.others).push(readProfile(path.join(dir, f)));
  }
  return out;
}

async function profiledRow<S extends Served>(label: string, dir: string, start: (nodeArgs: string[]) => Promise<S>, work: Work<S>): Promise<ProfiledRow> {
  fs.mkdirSync(dir, { recursive: true });
  await runTool('sync', [], { timeoutMs: 300_000 });
  const server = await start(nodeFlags(dir));
  let bytes: number;
  let cpu: { user: number; system: number };
  let window: Window | undefined;
  try {
    const used = (): { user: number; system: number } => (server.pids ?? [server.pid]).map(cpuTimes)
      .reduce((a, b) => ({ user: a.user + b.user, system: a.system + b.system }));
    const cpu0 = used();
    const from = process.hrtime.bigint();
    bytes = await work(server);
    window = { fromUs: Number(from / 1000n), toUs: Number(process.hrtime.bigint() / 1000n) };
    const cpu1 = used();
    cpu = { user: cpu1.user - cpu0.user, system: cpu1.system - cpu0.system };
  } finally {
    await server.stop();
  }
  if (!window) throw new Error(`${label}: the run did not finish`);
  const seconds = (window.toUs - window.fromUs) / 1e6;
  const { main, others } = profilesIn(dir);
  if (main.length === 0) throw new Error(`${label}: no main-thread profile in ${dir}`);
  // The profiles' clock is the one process.hrtime reads: their start-up and stop fall outside.
  const opts = { root: repoRoot, sourceLine, window };
  const io = summarise(main.length === 1 ? main[0] : mergeProfiles(main, window), { ...opts, window: main.length === 1 ? window : undefined });
  const rest = others.length > 0 ? summarise(mergeProfiles(others, window), { ...opts, window: undefined }) : null;
  const row = { label, bytes, seconds, cpuSeconds: cpu.user + cpu.system, systemSeconds: cpu.system,
    cpuPerGiB: (cpu.user + cpu.system) / (bytes / 2 ** 30), profileDir: path.relative(repoRoot, dir), io, others: rest };
  console.log(`  ${label}: ${(bytes / 2 ** 20).toFixed(0)} MiB, ${row.cpuPerGiB.toFixed(2)} CPU s/GiB`);
  return row;
}

/** One fio run of a benchmark's side: the bytes it moved. */
async function fioBytes(side: Side): Promise<number> {
  return (await side.run()).io_bytes;
}

async function transportRows(work: string, dirs: string, runtime: number): Promise<ProfiledRow[]> {
  const size = Number(process.env.BENCH_SIZE ?? 2 ** 30);
  const file = path.join(work, 'disk.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  const filler = await startNbdraid(null, { file, exportName: 'bench' });
  try {
    await runFio({ jobFile: 'transport-bench.fio', section: 'fill', env: { NBD_URI: filler.uri(), FIO_SIZE: String(size), FIO_RUNTIME: '0' }, timeoutMs: 600_000 });
  } finally {
    await filler.stop();
  }
  const rows: ProfiledRow[] = [];
  for (const job of transport.JOBS) {
    rows.push(await profiledRow(job.label, path.join(dirs, `transport-${job.section}`),
      (nodeArgs) => startNbdraid(null, { file, exportName: 'bench', nodeArgs }),
      (s) => fioBytes(transport.side('nbdraid', s, job, size, runtime))));
  }
  fs.rmSync(file, { force: true });
  return rows;
}

/**
 * Two controllers of `arr`, as `nbdraid cluster --controllers 2` runs them (two `serve NAME`
 * processes, the second once the first is up) but started here: the cluster passes no node flags
 * to its controllers, and node takes no --cpu-prof from NODE_OPTIONS.
 */
async function controllerPair(arr: TestArray, nodeArgs: string[]): Promise<ArrayProcess & { pids: number[] }> {
  const first = await serveArray(null, arr, nodeArgs);
  const both = [first, await serveArray(null, arr, nodeArgs).catch(async (err: unknown) => {
    await first.stop();
    throw err;
  })];
  return {
    pid: first.pid,
    pids: both.map((c) => c.pid),
    ports: both.map((c) => c.ports[0]),
    uri: (i = 0) => both[i].uri(),
    stderr: () => both.map((c) => c.stderr()).join('\n'),
    stop: async () => (await Promise.all(both.map((c) => c.stop())))[0],
    kill: async () => {
      await Promise.all(both.map((c) => c.kill()));
    },
  };
}

async function raidRows(work: string, dirs: string, runtime: number): Promise<ProfiledRow[]> {
  const arr = await raid.newArray(work, 'a');
  const filler = await serveArray(null, arr);
  try {
    await raid.fill(filler.uri());
  } finally {
    await filler.stop();
  }
  const rows: ProfiledRow[] = [];
  for (const job of raid.JOBS) {
    rows.push(await profiledRow(job.label, path.join(dirs, `raid-${job.section}`), (nodeArgs) => serveArray(null, arr, nodeArgs),
      (c) => fioBytes(raid.fioSide('nbdraid', c.pid, c.uri(), job, runtime))));
  }
  rows.push(await profiledRow('RAID: 8 writers on interleaved slices, 2 controllers', path.join(dirs, 'raid-interleaved'),
    (nodeArgs) => controllerPair(arr, nodeArgs), (pair) => fioBytes(raid.interleavedSide('2 controllers', pair, 0, 1, runtime))));
  await failMember(arr, 2);
  rows.push(await profiledRow('RAID: degraded 1 MiB seq read, QD8', path.join(dirs, 'raid-degraded'), (nodeArgs) => serveArray(null, arr, nodeArgs),
    (c) => fioBytes(raid.fioSide('degraded', c.pid, c.uri(), raid.SEQ_READ, runtime))));
  return rows;
}

/** Fails member `slot` through an unprofiled controller, as the raid benchmark does. */
async function failMember(arr: TestArray, slot: number): Promise<void> {
  const ctl = await serveArray(null, arr);
  try {
    await arr.cli('fail', arr.name, '--member', String(slot));
  } finally {
    await ctl.stop();
  }
}

async function rebuildRow(work: string, dirs: string): Promise<ProfiledRow> {
  process.env.BENCH_REBUILD_GIB ??= '0.25';
  const rb = await import('./rebuild.js'); // after the default above: it sizes its members on load
  const dir = path.join(work, 'rebuild');
  fs.mkdirSync(dir);
  const arr = await createArray({ dir, name: 'rb', memberSize: String(rb.MEMBER_BYTES) });
  await arr.cli('throttle', arr.name, '--min', '50', '--max', '0', '--inflight', '8');
  const filler = await serveArray(null, arr);
  try {
    await runFio({ jobFile: 'raid-bench.fio', section: 'fill', env: { NBD_URI: filler.uri(), FIO_SIZE: String(rb.FILL), FIO_RUNTIME: '0' }, timeoutMs: 600_000 });
  } finally {
    await filler.stop();
  }
  return profiledRow(`rebuild of one member, ${rb.DATA_PER_MEMBER / 2 ** 20} MiB (4+1, 1 controller)`, path.join(dirs, 'rebuild'),
    (nodeArgs) => serveArray(null, arr, nodeArgs),
    async () => {
      await rb.rebuildOnce(arr, 2, path.join(dir, 'spare'));
      return rb.DATA_PER_MEMBER;
    });
}

const pct = (share: number): string => `${(share * 100).toFixed(0)}%`;

/** A function as the table names it: native ones with their caller, anonymous ones with their file:line. */
function shortName(f: FunctionCost): string {
  if (f.caller) return `${f.name} < ${f.caller}`;
  return f.name === '(anonymous)' ? `${path.basename(f.location)}` : f.name;
}

function summaryTable(rows: ProfiledRow[]): string {
  return table(['row', 'CPU s/GiB', 'sys', 'top categories (I/O thread)', 'top 5 functions'], rows.map((r) => [
    r.label, r.cpuPerGiB.toFixed(2), pct(r.systemSeconds / r.cpuSeconds),
    r.io.categories.slice(0, 4).map((c) => `${pct(c.share)} ${c.name}`).join(', '),
    // The pseudo-frames ((idle), (garbage collector), (program)) are in the categories already.
    r.io.functions.filter((f) => f.category !== f.name).slice(0, 5).map((f) => `${pct(f.share)} ${shortName(f)}`).join(', '),
  ]));
}

function details(r: ProfiledRow): string {
  const busy = (s: ProfileSummary): number => 1 - (s.categories.find((c) => c.name === '(idle)')?.share ?? 0);
  const lines = [`${r.label}: ${(r.bytes / 2 ** 20).toFixed(0)} MiB in ${r.seconds.toFixed(1)} s, ${r.cpuSeconds.toFixed(2)} CPU s (${r.systemSeconds.toFixed(2)} s system); I/O thread ${(r.io.totalUs / 1e6).toFixed(1)} s sampled, ${pct(busy(r.io))} not idle`];
  lines.push(`  categories: ${r.io.categories.slice(0, 10).map((c) => `${pct(c.share)} ${c.name}`).join(', ')}`);
  lines.push(...r.io.functions.map((f) => `  ${pct(f.share).padStart(4)}  ${f.name}  ${f.caller ? `called from ${f.caller} ${f.location}` : f.location || f.category}`));
  if (r.others) {
    const top = r.others.categories.filter((c) => c.name !== '(idle)').slice(0, 4).map((c) => `${((c.us / 1e6)).toFixed(2)} s ${c.name}`).join(', ');
    lines.push(`  other threads: ${(r.others.totalUs / 1e6).toFixed(1)} s sampled, ${pct(busy(r.others))} not idle${top ? `: ${top}` : ''}`);
  }
  return lines.join('\n');
}

export async function run(): Promise<void> {
  const runtime = Number(process.env.BENCH_RUNTIME ?? 5);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dirs = path.join(repoRoot, 'bench-results', 'profiles', `profile-${stamp}`);
  const work = scratch('nbdraid-bench-profile-');
  console.log(`profile benchmark: one ${runtime} s run per row, each against a fresh nbdraid under --cpu-prof; profiles in ${path.relative(process.cwd(), dirs)}`);
  try {
    const rows = [...(await transportRows(work, dirs, runtime)), ...(await raidRows(work, dirs, runtime)), await rebuildRow(work, dirs)];
    console.log(`\n${summaryTable(rows)}\n`);
    console.log(`${rows.map(details).join('\n\n')}\n`);
    console.log(`results: ${await saveResult('profile', { runtimeSeconds: runtime, rows })}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
