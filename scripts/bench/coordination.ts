// `npm run bench -- coordination`: claim+complete transitions per second with 1, 2 and 4 controller
// processes on one database, and the lease hand-over latency between two processes, on SQLite and
// on a throw-away PostgreSQL started here. Prints one table and writes JSON under bench-results/.
// BENCH_PARTITIONS sets the task size (BENCH_PG_PARTITIONS for PostgreSQL).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startPostgres, type Postgres } from '../../harness/postgres.js';
import { openDatabase } from '../../lib/coordination/db.js';
import { PgBackend } from '../../lib/coordination/pg/index.js';
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

type Backend = 'sqlite' | 'postgres' | 'postgres-cache';
interface ClaimRun { backend: Backend; processes: number; partitions: number; seconds: number; transitionsPerSecond: number }
interface HandoverRun { backend: Backend; tickMs: number; samples: number; p50: number; p99: number; max: number }

const onePartitionEach = (n: number) => Array.from({ length: n }, (_, i) => ({ stripeStart: i, stripeEnd: i + 1 }));

function rate(backend: Backend, processes: number, partitions: number, lines: string[], ms: number): ClaimRun {
  const done = lines.reduce((s, l) => s + Number(l.split(' ')[1]), 0);
  if (done !== partitions) throw new Error(`completed ${done} of ${partitions} partitions`);
  return { backend, processes, partitions, seconds: ms / 1000, transitionsPerSecond: (2 * done) / (ms / 1000) };
}

function quantiles(backend: Backend, tickMs: number, lines: string[]): HandoverRun {
  const all = lines.flatMap((l) => l.split(' ')[1].split(',').filter((v) => v !== '').map(Number)).sort((a, b) => a - b);
  if (all.length === 0) throw new Error('no hand-over sampled');
  const q = (f: number): number => all[Math.min(all.length - 1, Math.floor(f * all.length))];
  return { backend, tickMs, samples: all.length, p50: q(0.5), p99: q(0.99), max: all[all.length - 1] };
}

/** A fresh database on the server for one run. */
let runs = 0;
async function pgDatabase(pg: Postgres): Promise<string> {
  const name = `bench${++runs}`;
  await pg.psql(`CREATE DATABASE ${name}`);
  return pg.uri(name);
}

async function pgClaimRate(pg: Postgres, processes: number, partitions: number): Promise<ClaimRun> {
  const uri = await pgDatabase(pg);
  const backend = await PgBackend.open(uri, { deadAfterMs: 60_000, poolSize: 1 });
  await backend.createTask({ kind: 'bench', initiator: null, partitions: onePartitionEach(partitions) });
  await backend.close();
  const { lines, ms } = await race(Array.from({ length: processes }, () => startWorker(['pg-claims', uri])));
  return rate('postgres', processes, partitions, lines, ms);
}

async function pgHandover(pg: Postgres, samples: number, tickMs: number): Promise<HandoverRun> {
  const uri = await pgDatabase(pg);
  await (await PgBackend.open(uri, { deadAfterMs: 60_000, poolSize: 1 })).close(); // the schema, before both race to it
  const env = { TICK_MS: String(tickMs) };
  const { lines } = await race([startWorker(['pg-handover', uri, String(samples)], env), startWorker(['pg-handover', uri, String(samples)], env)]);
  return quantiles('postgres', tickMs, lines);
}

/** The hand-over through a Coordinator's lease cache on PostgreSQL, as a controller takes a region. */
async function pgCacheHandover(pg: Postgres, samples: number): Promise<HandoverRun> {
  const uri = await pgDatabase(pg);
  await (await PgBackend.open(uri, { deadAfterMs: 60_000, poolSize: 1 })).close();
  const { lines } = await race([startWorker(['pg-cache-handover', uri, String(samples)]), startWorker(['pg-cache-handover', uri, String(samples)])]);
  return quantiles('postgres-cache', 0, lines);
}

async function claimRate(processes: number, partitions: number): Promise<ClaimRun> {
  const dir = mkdtempSync(join(tmpdir(), 'nbdraid-bench-coord-'));
  try {
    const db = openDatabase(dir);
    new TaskStore(db).create({ kind: 'bench', initiator: null, partitions: onePartitionEach(partitions) });
    db.close();
    const { lines, ms } = await race(Array.from({ length: processes }, () => startWorker(['claims', dir])));
    return rate('sqlite', processes, partitions, lines, ms);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function handover(samples: number, tickMs: number): Promise<HandoverRun> {
  const dir = mkdtempSync(join(tmpdir(), 'nbdraid-bench-coord-'));
  try {
    openDatabase(dir).close();
    const env = { TICK_MS: String(tickMs) };
    const { lines } = await race([startWorker(['handover', dir, String(samples)], env), startWorker(['handover', dir, String(samples)], env)]);
    return quantiles('sqlite', tickMs, lines);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `fn` with a throw-away PostgreSQL, stopped and removed afterwards whatever happens. */
async function withPostgres<T>(fn: (pg: Postgres) => Promise<T>): Promise<T> {
  const teardowns: (() => unknown)[] = [];
  try {
    return await fn(await startPostgres({ teardown: (f) => { teardowns.push(f); } }));
  } finally {
    for (const f of teardowns.reverse()) await f();
  }
}

const num = (v: number | undefined, digits: number, width: number): string => (v === undefined ? '-' : v.toFixed(digits)).padStart(width);

export async function run(): Promise<void> {
  const partitions = Number(process.env.BENCH_PARTITIONS ?? 20_000);
  const pgPartitions = Number(process.env.BENCH_PG_PARTITIONS ?? 10_000);
  console.log(`coordination benchmark: ${partitions} partitions (PostgreSQL ${pgPartitions}), ${cpus().length} CPUs`);
  const claims: ClaimRun[] = [];
  for (const n of [1, 2, 4]) claims.push(await claimRate(n, partitions));
  const handovers = [await handover(200, 10), await handover(200, 2)];
  await withPostgres(async (pg) => {
    for (const n of [1, 2, 4]) claims.push(await pgClaimRate(pg, n, pgPartitions));
    handovers.push(await pgHandover(pg, 200, 10), await pgHandover(pg, 200, 2), await pgCacheHandover(pg, 200));
  });
  const of = <R extends { backend: Backend }>(rows: R[], backend: Backend, match: (r: R) => boolean) => rows.find((r) => r.backend === backend && match(r));
  console.log('\nclaim + complete, transitions/s (2 per partition, each its own transaction)');
  console.log(['processes', '   sqlite', ' postgres'].join('  '));
  for (const n of [1, 2, 4]) {
    const [sq, pq] = (['sqlite', 'postgres'] as const).map((b) => of(claims, b, (c) => c.processes === n)?.transitionsPerSecond);
    console.log(`${String(n).padStart(9)}  ${num(sq, 0, 9)}  ${num(pq, 0, 9)}`);
  }
  console.log('\nlease hand-over between two processes (region wanted -> granted), ms; tick = poll fallback;');
  console.log('postgres-cache: through a Coordinator\'s lease cache, as a serving controller (NOTIFY only, no tick)');
  console.log(['backend       ', 'tick ms', 'samples', 'p50 ms', 'p99 ms', 'max ms'].join('  '));
  for (const h of handovers) console.log(`${h.backend.padEnd(14)}  ${String(h.tickMs).padStart(7)}  ${String(h.samples).padStart(7)}  ${num(h.p50, 2, 6)}  ${num(h.p99, 2, 6)}  ${num(h.max, 2, 6)}`);
  const outDir = join(repoRoot, 'bench-results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `coordination-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: cpus().length, claims, handovers }, null, 2)}\n`);
  console.log(`\nwritten ${file}`);
}
