// `npm run bench -- transport`: fio's nbd engine against `nbdraid serve --file` and nbdkit's file
// plugin serving the same 2 GiB file (filled first, so reads hit real data): 1 MiB sequential
// read and write at iodepth 8, 4 KiB random read and write at iodepth 32, time-based. The two
// servers alternate, several rounds per job; each side's median round is compared. Prints a table
// with nbdraid/nbdkit ratios and writes JSON (with every round) under bench-results/.
// Environment: BENCH_RUNTIME (seconds per run, default 10), BENCH_ROUNDS (default 3), BENCH_SIZE
// (bytes, default 2 GiB), BENCH_PROFILE=1 (nbdraid runs with --cpu-prof; profiles land in
// bench-results/profiles/).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runFio, type FioIo } from '../../test/helpers/fio.js';
import { runTool } from '../../test/helpers/run-tool.js';
import { repoRoot, startNbdkit, startNbdraid, type ServerProcess } from '../../test/helpers/server-process.js';

interface Job {
  section: string;
  label: string;
  dir: 'read' | 'write';
  /** Goal for the nbdraid/nbdkit ratio. */
  goal: number;
}

const JOBS: Job[] = [
  { section: 'seq-read', label: '1 MiB seq read, QD8', dir: 'read', goal: 1.0 },
  { section: 'seq-write', label: '1 MiB seq write, QD8', dir: 'write', goal: 1.0 },
  { section: 'rand-read', label: '4 KiB rand read, QD32', dir: 'read', goal: 0.8 },
  { section: 'rand-write', label: '4 KiB rand write, QD32', dir: 'write', goal: 0.8 },
];

interface Measurement {
  mbps: number;
  iops: number;
  meanLatencyUs: number;
  p99LatencyUs: number;
}

interface Row {
  job: string;
  label: string;
  nbdraid: Measurement;
  nbdkit: Measurement;
  ratio: number;
  goal: number;
  met: boolean;
  /** Every round's measurement, in order. */
  rounds: { nbdraid: Measurement[]; nbdkit: Measurement[] };
}

function measure(io: FioIo): Measurement {
  return {
    mbps: io.bw_bytes / 1e6,
    iops: io.iops,
    meanLatencyUs: io.lat_ns.mean / 1000,
    p99LatencyUs: (io.clat_ns.percentile?.['99.000000'] ?? 0) / 1000,
  };
}

async function fioJob(server: ServerProcess, section: string, size: number, runtime: number): Promise<FioIo[]> {
  const env = { NBD_URI: server.uri(), FIO_SIZE: String(size), FIO_RUNTIME: String(runtime) };
  try {
    const report = await runFio({ jobFile: 'transport-bench.fio', section, env, timeoutMs: (runtime + 120) * 1000 });
    return [report.jobs[0].read, report.jobs[0].write];
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- server stderr ---\n${server.stderr().slice(-4000)}`);
  }
}

const median = (xs: Measurement[]): Measurement => [...xs].sort((p, q) => p.mbps - q.mbps)[Math.floor(xs.length / 2)];

/**
 * Runs the job `rounds` times on each server, alternating, and keeps each server's median round:
 * on a small shared machine single runs swing widely, alternation spreads that drift evenly.
 */
async function compare(
  job: Job, nbdraid: ServerProcess, nbdkit: ServerProcess, size: number, runtime: number, rounds: number,
): Promise<Row> {
  const runs: { nbdraid: Measurement[]; nbdkit: Measurement[] } = { nbdraid: [], nbdkit: [] };
  for (let i = 0; i < rounds; i++) {
    for (const [name, server] of [['nbdraid', nbdraid], ['nbdkit', nbdkit]] as const) {
      const [read, write] = await fioJob(server, job.section, size, runtime);
      runs[name].push(measure(job.dir === 'read' ? read : write));
    }
  }
  const a = median(runs.nbdraid);
  const b = median(runs.nbdkit);
  const ratio = a.mbps / b.mbps; // same block size on both sides, so also the IOPS ratio
  const spread = (xs: Measurement[]): string => xs.map((m) => m.mbps.toFixed(0)).join('/');
  console.log(`  ${job.label}: nbdraid ${spread(runs.nbdraid)} MB/s, nbdkit ${spread(runs.nbdkit)} MB/s`);
  return { job: job.section, label: job.label, nbdraid: a, nbdkit: b, ratio, goal: job.goal, met: ratio >= job.goal, rounds: runs };
}

function table(rows: Row[]): string {
  const head = ['job', 'nbdraid MB/s', 'nbdraid IOPS', 'nbdkit MB/s', 'nbdkit IOPS', 'ratio', 'goal', ''];
  const body = rows.map((r) => [
    r.label, r.nbdraid.mbps.toFixed(1), r.nbdraid.iops.toFixed(0), r.nbdkit.mbps.toFixed(1), r.nbdkit.iops.toFixed(0),
    r.ratio.toFixed(2), `>= ${r.goal.toFixed(1)}`, r.met ? 'met' : 'MISSED',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

async function versions(): Promise<Record<string, string>> {
  const first = async (cmd: string, args: string[]): Promise<string> =>
    (await runTool(cmd, args, { allowFailure: true })).stdout.split('\n')[0].trim();
  return { node: process.version, fio: await first('fio', ['--version']), nbdkit: await first('nbdkit', ['--version']) };
}

export async function run(): Promise<void> {
  const runtime = Number(process.env.BENCH_RUNTIME ?? 10);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const size = Number(process.env.BENCH_SIZE ?? 2 ** 31);
  const outDir = path.join(repoRoot, 'bench-results');
  const profileDir = path.join(outDir, 'profiles');
  const nodeArgs = process.env.BENCH_PROFILE === '1' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-bench-'));
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
    for (const job of JOBS) rows.push(await compare(job, nbdraid, nbdkit, size, runtime, rounds));
    console.log(`\n${table(rows)}\n`);
    fs.mkdirSync(outDir, { recursive: true });
    const out = path.join(outDir, `transport-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    const host = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryBytes: os.totalmem(), kernel: os.release() };
    fs.writeFileSync(out, JSON.stringify({ benchmark: 'transport', runtimeSeconds: runtime, rounds, sizeBytes: size, host, versions: await versions(), rows }, null, 2));
    console.log(`results: ${path.relative(process.cwd(), out)}`);
  } finally {
    for (const s of servers) await s.stop();
    if (nodeArgs.length) console.log(`cpu profiles: ${path.relative(process.cwd(), profileDir)}`);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
