// `npm run bench -- raid`: fio's nbd engine against a served 4+1 RAID-5 array (512 KiB chunk,
// five members of 512 MiB + the 1 MiB data offset: 2 GiB usable) and nbdkit's file plugin serving
// one 2 GiB file, both filled first. Rows (each side's median of BENCH_ROUNDS alternating rounds,
// sync before each, CPU time of the serving processes read around each run):
//   one controller vs nbdkit: 2 MiB sequential write (aligned full stripes), 1 MiB sequential
//   read, 4 KiB random read, 4 KiB random write (read-modify-write);
//   degraded vs optimal: 1 MiB sequential read on a second, identical array with member 2 failed,
//   against the first;
//   two controllers vs one: eight writers on interleaved 256 MiB slices, half through each of
//   two controllers (`nbdraid cluster --controllers 2`), against all through controller 0.
// Prints the table with ratios and goals, writes JSON under bench-results/.
// Environment: BENCH_RUNTIME (seconds per run, default 10), BENCH_ROUNDS (default 3),
// BENCH_PROFILE=1 (the one-controller server runs with --cpu-prof; profiles land in
// bench-results/profiles/).
import fs from 'node:fs';
import path from 'node:path';
import { type FioIo, runFio } from '../../harness/fio.js';
import { type ArrayProcess, type TestArray, clusterArray, createArray, serveArray } from '../../harness/raid-array.js';
import { repoRoot, startNbdkit } from '../../harness/server-process.js';
import { type Goal, type Row, type Side, compareSides, renderRows } from './_compare.js';
import { saveResult, scratch } from './_common.js';

export const SIZE = 2 ** 31;
const MEMBER_SIZE = '513M';
const SLICE = SIZE / 8;

export interface Job { section: string; label: string; dir: 'read' | 'write'; goal: Goal }

export const SEQ_READ: Job = { section: 'seq-read', label: 'RAID: 1 MiB seq read, QD8', dir: 'read', goal: { ratio: 1.0 } };
export const JOBS: Job[] = [
  { section: 'seq-write-2m', label: 'RAID: 2 MiB full-stripe write, QD8', dir: 'write', goal: { ratio: 0.8, p99Ratio: 2 } },
  SEQ_READ,
  { section: 'rand-read', label: 'RAID: 4 KiB rand read, QD32', dir: 'read', goal: { ratio: 1.0 } },
  { section: 'rand-write', label: 'RAID: 4 KiB rand write (RMW), QD32', dir: 'write', goal: { ratio: 0.6 } },
];

export function fioSide(name: string, pid: number, uri: string, job: Job, runtime: number): Side {
  return {
    name,
    pid,
    run: async (): Promise<FioIo> => {
      const env = { NBD_URI: uri, FIO_SIZE: String(SIZE), FIO_RUNTIME: String(runtime) };
      const r = await runFio({ jobFile: 'raid-bench.fio', section: job.section, env, timeoutMs: (runtime + 120) * 1000 });
      return r.jobs[0][job.dir];
    },
  };
}

export function interleavedSide(name: string, ctl: ArrayProcess, even: number, odd: number, runtime: number): Side {
  return {
    name,
    pid: ctl.pid,
    run: async (): Promise<FioIo> => {
      const env = {
        NBD_URI_EVEN: ctl.uri(even), NBD_URI_ODD: ctl.uri(odd), FIO_SLICE: String(SLICE), FIO_STRIDE: String(2 * SLICE), FIO_RUNTIME: String(runtime),
      };
      const r = await runFio({ jobFile: 'raid-interleaved.fio', env, timeoutMs: (runtime + 120) * 1000 });
      return r.jobs[0].write;
    },
  };
}

export async function fill(uri: string): Promise<void> {
  await runFio({ jobFile: 'raid-bench.fio', section: 'fill', env: { NBD_URI: uri, FIO_SIZE: String(SIZE), FIO_RUNTIME: '0' }, timeoutMs: 600_000 });
}

export async function newArray(work: string, sub: string): Promise<TestArray> {
  const dir = path.join(work, sub);
  fs.mkdirSync(dir);
  return createArray({ dir, name: 'bench', memberSize: MEMBER_SIZE });
}

export async function run(): Promise<void> {
  const runtime = Number(process.env.BENCH_RUNTIME ?? 10);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const profileDir = path.join(repoRoot, 'bench-results', 'profiles');
  const nodeArgs = process.env.BENCH_PROFILE === '1' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const work = scratch('nbdraid-bench-raid-');
  const stops: (() => Promise<unknown>)[] = [];
  const started = <T extends { stop(): Promise<unknown> }>(p: T): T => {
    stops.push(() => p.stop());
    return p;
  };
  try {
    const arr = await newArray(work, 'a');
    const ctl = started(await serveArray(null, arr, nodeArgs));
    const file = path.join(work, 'flat.img');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, SIZE);
    const nbdkit = started(await startNbdkit(null, { file, exportName: 'bench' }));
    console.log(`raid benchmark: 4+1 RAID-5, 512 KiB chunk, ${SIZE / 2 ** 20} MiB usable vs nbdkit file plugin; ${rounds} rounds of ${runtime} s per row and side; filling...`);
    await fill(ctl.uri());
    await fill(nbdkit.uri());
    const rows: Row[] = [];
    for (const job of JOBS) {
      rows.push(await compareSides(job.label, fioSide('nbdraid', ctl.pid, ctl.uri(), job, runtime), fioSide('nbdkit', nbdkit.pid, nbdkit.uri(), job, runtime), rounds, job.goal));
    }
    await nbdkit.stop();

    const second = await newArray(work, 'b');
    const degradedCtl = started(await serveArray(null, second));
    await fill(degradedCtl.uri());
    await second.cli('fail', second.name, '--member', '2');
    const degraded = fioSide('degraded', degradedCtl.pid, degradedCtl.uri(), SEQ_READ, runtime);
    const optimal = fioSide('optimal', ctl.pid, ctl.uri(), SEQ_READ, runtime);
    rows.push(await compareSides('RAID: degraded 1 MiB seq read, QD8', degraded, optimal, rounds, { ratio: 0.8 }));
    await degradedCtl.stop();
    fs.rmSync(path.join(work, 'b'), { recursive: true, force: true });

    await ctl.stop();
    const pair = started(await clusterArray(null, arr, 2));
    const two = interleavedSide('2 controllers', pair, 0, 1, runtime);
    const one = interleavedSide('1 controller', pair, 0, 0, runtime);
    rows.push(await compareSides('RAID: 8 writers on interleaved slices, 2 MiB, QD2 each', two, one, rounds, { ratio: 0.8, p99Ratio: 3 }));

    console.log(`\n${renderRows(rows)}\n`);
    console.log(`results: ${await saveResult('raid', { runtimeSeconds: runtime, rounds, sizeBytes: SIZE, chunk: 512 << 10, members: 5, rows })}`);
  } finally {
    for (const stop of stops.reverse()) await stop();
    if (nodeArgs.length) console.log(`cpu profiles: ${path.relative(process.cwd(), profileDir)}`);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
