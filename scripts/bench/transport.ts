// `npm run bench -- transport`: fio's nbd engine against `nbdraid serve --file` and nbdkit's file
// plugin serving the same file (filled first, so reads hit real data): 1 MiB sequential read and
// write at iodepth 8, 4 KiB random read and write at iodepth 32, time-based. The two servers
// alternate over rounds (sync before each run); each side's median round is compared. Every row
// shows MB/s, IOPS, p99 and the server's CPU seconds per GiB for both sides, the ratio and the
// goal; JSON (with every round) goes under bench-results/.
// Environment: BENCH_RUNTIME (seconds per run, default 10), BENCH_ROUNDS (default 3), BENCH_SIZE
// (bytes, default 2 GiB), BENCH_PROFILE=1 (nbdraid runs with --cpu-prof; profiles land in
// bench-results/profiles/).
import fs from 'node:fs';
import path from 'node:path';
import { runFio, type FioIo } from '../../harness/fio.js';
import { repoRoot, startNbdkit, startNbdraid, type ServerProcess } from '../../harness/server-process.js';
import { type Row, type Side, compareSides, renderRows } from './_compare.js';
import { saveResult, scratch } from './_common.js';

export interface Job { section: string; label: string; dir: 'read' | 'write'; goal: number }

export const JOBS: Job[] = [
  { section: 'seq-read', label: 'serve --file: 1 MiB seq read, QD8', dir: 'read', goal: 1.0 },
  { section: 'seq-write', label: 'serve --file: 1 MiB seq write, QD8', dir: 'write', goal: 1.0 },
  { section: 'rand-read', label: 'serve --file: 4 KiB rand read, QD32', dir: 'read', goal: 1.0 },
  { section: 'rand-write', label: 'serve --file: 4 KiB rand write, QD32', dir: 'write', goal: 1.0 },
];

export function side(name: string, server: ServerProcess, job: Job, size: number, runtime: number): Side {
  return {
    name,
    pid: server.pid,
    run: async (): Promise<FioIo> => {
      const env = { NBD_URI: server.uri(), FIO_SIZE: String(size), FIO_RUNTIME: String(runtime) };
      try {
        const report = await runFio({ jobFile: 'transport-bench.fio', section: job.section, env, timeoutMs: (runtime + 120) * 1000 });
        return report.jobs[0][job.dir];
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- server stderr ---\n${server.stderr().slice(-4000)}`);
      }
    },
  };
}

export async function run(): Promise<void> {
  const runtime = Number(process.env.BENCH_RUNTIME ?? 10);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const size = Number(process.env.BENCH_SIZE ?? 2 ** 31);
  const profileDir = path.join(repoRoot, 'bench-results', 'profiles');
  const nodeArgs = process.env.BENCH_PROFILE === '1' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const work = scratch('nbdraid-bench-');
  const file = path.join(work, 'disk.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  const servers: ServerProcess[] = [];
  try {
    const nbdraid = await startNbdraid(null, { file, exportName: 'bench', nodeArgs });
    servers.push(nbdraid);
    const nbdkit = await startNbdkit(null, { file, exportName: 'bench' });
    servers.push(nbdkit);
    console.log(`transport benchmark: ${size / 2 ** 20} MiB file, ${rounds} rounds of ${runtime} s per job and server; filling...`);
    await runFio({ jobFile: 'transport-bench.fio', section: 'fill', env: { NBD_URI: nbdkit.uri(), FIO_SIZE: String(size), FIO_RUNTIME: '0' }, timeoutMs: 600_000 });
    const rows: Row[] = [];
    for (const job of JOBS) {
      const a = side('nbdraid', nbdraid, job, size, runtime);
      const b = side('nbdkit', nbdkit, job, size, runtime);
      rows.push(await compareSides(job.label, a, b, rounds, { ratio: job.goal }));
    }
    console.log(`\n${renderRows(rows)}\n`);
    console.log(`results: ${await saveResult('transport', { runtimeSeconds: runtime, rounds, sizeBytes: size, rows })}`);
  } finally {
    for (const s of servers) await s.stop();
    if (nodeArgs.length) console.log(`cpu profiles: ${path.relative(process.cwd(), profileDir)}`);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
