// `npm run bench -- raid`: fio's nbd engine against a served 4+1 RAID-5 array (512 KiB chunk,
// five members of 512 MiB + the 1 MiB data offset: 2 GiB usable, one controller) and against
// nbdkit's file plugin serving one 2 GiB file. Both are filled first. Jobs: 2 MiB sequential write
// (aligned full stripes), 1 MiB sequential read, 4 KiB random read and write (read-modify-write on
// the array), each time-based; the servers alternate job by job. Then member 2 is failed and the
// sequential read runs again degraded. Prints a table with ratios and goals, writes JSON under
// bench-results/.
// Environment: BENCH_RUNTIME (seconds per job, default 10), BENCH_PROFILE=1 (the controller runs
// with --cpu-prof; profiles land in bench-results/profiles/).
import fs from 'node:fs';
import path from 'node:path';
import { runFio } from '../../test/helpers/fio.js';
import { createArray, serveArray } from '../../test/helpers/raid-array.js';
import { repoRoot, startNbdkit } from '../../test/helpers/server-process.js';
import { type Measurement, measure, saveResult, scratch, table, verdict } from './_common.js';

const SIZE = 2 ** 31;
const MEMBER_SIZE = '513M';

interface Job { section: string; label: string; dir: 'read' | 'write'; goal?: number }

const JOBS: Job[] = [
  { section: 'seq-write-2m', label: '2 MiB seq write (full stripes), QD8', dir: 'write', goal: 0.8 },
  { section: 'seq-read', label: '1 MiB seq read, QD8', dir: 'read', goal: 1.0 },
  { section: 'rand-read', label: '4 KiB rand read, QD32', dir: 'read' },
  { section: 'rand-write', label: '4 KiB rand write (RMW), QD32', dir: 'write', goal: 0.5 },
];

interface Row { label: string; nbdraid: Measurement; reference: Measurement; referenceName: string; ratio: number; goal?: number }

async function fio(uri: string, job: Job, runtime: number): Promise<Measurement> {
  const env = { NBD_URI: uri, FIO_SIZE: String(SIZE), FIO_RUNTIME: String(runtime) };
  const r = await runFio({ jobFile: 'raid-bench.fio', section: job.section, env, timeoutMs: (runtime + 120) * 1000 });
  return measure(job.dir === 'read' ? r.jobs[0].read : r.jobs[0].write);
}

async function fill(uri: string): Promise<void> {
  await runFio({ jobFile: 'raid-bench.fio', section: 'fill', env: { NBD_URI: uri, FIO_SIZE: String(SIZE), FIO_RUNTIME: '0' }, timeoutMs: 600_000 });
}

function render(rows: Row[]): string {
  return table(
    ['job', 'nbdraid MB/s', 'IOPS', 'p99 us', 'reference', 'MB/s', 'IOPS', 'p99 us', 'ratio', 'goal', ''],
    rows.map((r) => [
      r.label, r.nbdraid.mbps.toFixed(1), r.nbdraid.iops.toFixed(0), r.nbdraid.p99LatencyUs.toFixed(0),
      r.referenceName, r.reference.mbps.toFixed(1), r.reference.iops.toFixed(0), r.reference.p99LatencyUs.toFixed(0),
      r.ratio.toFixed(2), r.goal === undefined ? '-' : `>= ${r.goal.toFixed(1)}`, r.goal === undefined ? '' : verdict(r.ratio, r.goal),
    ]),
  );
}

export async function run(): Promise<void> {
  const runtime = Number(process.env.BENCH_RUNTIME ?? 10);
  const profileDir = path.join(repoRoot, 'bench-results', 'profiles');
  const nodeArgs = process.env.BENCH_PROFILE === '1' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const work = scratch('nbdraid-bench-raid-');
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const arr = await createArray({ dir: work, name: 'bench', memberSize: MEMBER_SIZE });
    const ctl = await serveArray(null, arr, nodeArgs);
    stops.push(() => ctl.stop());
    const file = path.join(work, 'flat.img');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, SIZE);
    const nbdkit = await startNbdkit(null, { file, exportName: 'bench' });
    stops.push(() => nbdkit.stop());
    console.log(`raid benchmark: 4+1 RAID-5, 512 KiB chunk, ${SIZE / 2 ** 20} MiB usable vs nbdkit file plugin; ${runtime} s per job; filling both...`);
    await fill(ctl.uri());
    await fill(nbdkit.uri());
    const rows: Row[] = [];
    let optimalRead: Measurement | undefined;
    for (const job of JOBS) {
      const a = await fio(ctl.uri(), job, runtime);
      const b = await fio(nbdkit.uri(), job, runtime);
      if (job.section === 'seq-read') optimalRead = a;
      rows.push({ label: job.label, nbdraid: a, reference: b, referenceName: 'nbdkit', ratio: a.mbps / b.mbps, goal: job.goal });
      console.log(`  ${job.label}: nbdraid ${a.mbps.toFixed(1)} MB/s, nbdkit ${b.mbps.toFixed(1)} MB/s`);
    }
    await arr.cli('fail', arr.name, '--member', '2');
    const readJob = JOBS.find((j) => j.section === 'seq-read') as Job;
    const degraded = await fio(ctl.uri(), readJob, runtime);
    const optimal = optimalRead as Measurement;
    rows.push({ label: '1 MiB seq read DEGRADED, QD8', nbdraid: degraded, reference: optimal, referenceName: 'optimal', ratio: degraded.mbps / optimal.mbps, goal: 0.7 });
    console.log(`  degraded seq read: ${degraded.mbps.toFixed(1)} MB/s (optimal ${optimal.mbps.toFixed(1)} MB/s)`);
    console.log(`\n${render(rows)}\n`);
    console.log(`results: ${await saveResult('raid', { runtimeSeconds: runtime, sizeBytes: SIZE, chunk: 512 << 10, members: 5, rows })}`);
  } finally {
    for (const stop of stops.reverse()) await stop();
    if (nodeArgs.length) console.log(`cpu profiles: ${path.relative(process.cwd(), profileDir)}`);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
