// `npm run bench -- coordination`: claim+complete transitions per second with 1, 2 and 4 controller
// processes on one database, and the lease hand-over latency between two processes. Prints a
// table and writes JSON under bench-results/. BENCH_PARTITIONS sets the task size.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../../lib/coordination/db.js';
import { TaskStore } from '../../lib/coordination/tasks.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..', '..');
const WORKER = join(here, '_coordination-worker.js');

interface Worker { proc: ChildProcess; lines: AsyncIterator<string>; exited: Promise<unknown> }

function startWorker(args: string[], env: Record<string, string> = {}): Worker {
  const proc = spawn(process.execPath, [WORKER, ...args], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  return { proc, lines: createInterface({ input: proc.stdout! })[Symbol.asyncIterator](), exited };
}

async function nextLine(w: Worker): Promise<string> {
  const r = await w.lines.next();
  if (r.done) throw new Error('benchmark worker ended early');
  return r.value;
}

/** Starts the workers, releases them together, and returns their result lines and the wall time. */
async function race(workers: Worker[]): Promise<{ lines: string[]; ms: number }> {
  for (const w of workers) if ((await nextLine(w)) !== 'ready') throw new Error('benchmark worker did not start');
  const t0 = performance.now();
  for (const w of workers) w.proc.stdin!.write('go\n');
  const lines = await Promise.all(workers.map(nextLine));
  const ms = performance.now() - t0;
  await Promise.all(workers.map((w) => w.exited));
  return { lines, ms };
}

async function claimRate(processes: number, partitions: number): Promise<{ processes: number; partitions: number; seconds: number; transitionsPerSecond: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'nbdraid-bench-coord-'));
  try {
    const db = openDatabase(dir);
    new TaskStore(db).create({ kind: 'bench', initiator: null, partitions: Array.from({ length: partitions }, (_, i) => ({ stripeStart: i, stripeEnd: i + 1 })) });
    db.close();
    const { lines, ms } = await race(Array.from({ length: processes }, () => startWorker(['claims', dir])));
    const done = lines.reduce((s, l) => s + Number(l.split(' ')[1]), 0);
    if (done !== partitions) throw new Error(`completed ${done} of ${partitions} partitions`);
    return { processes, partitions, seconds: ms / 1000, transitionsPerSecond: (2 * done) / (ms / 1000) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function handover(samples: number, tickMs: number): Promise<{ tickMs: number; samples: number; p50: number; p99: number; max: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'nbdraid-bench-coord-'));
  try {
    openDatabase(dir).close();
    const env = { TICK_MS: String(tickMs) };
    const { lines } = await race([startWorker(['handover', dir, String(samples)], env), startWorker(['handover', dir, String(samples)], env)]);
    const all = lines.flatMap((l) => l.split(' ')[1].split(',').map(Number)).sort((a, b) => a - b);
    const q = (f: number): number => all[Math.min(all.length - 1, Math.floor(f * all.length))];
    return { tickMs, samples: all.length, p50: q(0.5), p99: q(0.99), max: all[all.length - 1] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const partitions = Number(process.env.BENCH_PARTITIONS ?? 20_000);
  console.log(`coordination benchmark: ${partitions} partitions, ${cpus().length} CPUs`);
  const claims = [];
  for (const n of [1, 2, 4]) claims.push(await claimRate(n, partitions));
  const handovers = [await handover(200, 10), await handover(200, 2)];
  console.log('\nclaim + complete (2 transitions per partition, each its own BEGIN IMMEDIATE transaction)');
  console.log(['processes', 'partitions', 'seconds', 'transitions/s'].join('  '));
  for (const c of claims) console.log(`${String(c.processes).padStart(9)}  ${String(c.partitions).padStart(10)}  ${c.seconds.toFixed(2).padStart(7)}  ${c.transitionsPerSecond.toFixed(0).padStart(13)}`);
  console.log('\nlease hand-over between two processes (region wanted -> granted)');
  console.log(['tick ms', 'samples', 'p50 ms', 'p99 ms', 'max ms'].join('  '));
  for (const h of handovers) console.log(`${String(h.tickMs).padStart(7)}  ${String(h.samples).padStart(7)}  ${h.p50.toFixed(2).padStart(6)}  ${h.p99.toFixed(2).padStart(6)}  ${h.max.toFixed(2).padStart(6)}`);
  const outDir = join(repoRoot, 'bench-results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `coordination-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: cpus().length, claims, handovers }, null, 2)}\n`);
  console.log(`\nwritten ${file}`);
}
