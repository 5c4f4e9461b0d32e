// `npm run bench -- evloop`: the event-loop delay of a controller (perf_hooks) and its 4 KiB
// write+read rate on a held region, idle and while another process holds the coordination
// database's write lock for 2 s. Goal: max delay < 50 ms while locked, I/O going on. ROUNDS
// alternating idle and locked rounds; medians reported.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Controller } from '../../lib/controller/controller.js';
import { databasePath } from '../../lib/coordination/db.js';
import { NbdClient } from '../../lib/transport/client.js';
import { saveResult, scratch, table } from './_common.js';

const LOCK_MS = 2000;
const ROUNDS = 3;
const GOAL_MS = 50;
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'cmd', 'nbdraid.js');
const sqlite = path.dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json'));

interface Round { locked: boolean; maxMs: number; p99Ms: number; opsPerS: number }

/** A child holding the write lock for `ms`; resolves when it took it, `released` when it let go. */
async function holdLock(db: string, ms: number): Promise<{ exited: Promise<void> }> {
  const src = `const D=require(${JSON.stringify(sqlite)}); const db=new D(process.argv[1],{timeout:10000});
    db.exec('BEGIN IMMEDIATE'); console.log('locked'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,Number(process.argv[2]));
    db.exec('COMMIT'); db.close();`;
  const child = spawn(process.execPath, ['-e', src, db, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    lines.once('line', () => resolve());
    void exited.then(() => reject(new Error('the lock holder ended before taking the lock')));
  });
  return { exited };
}

async function round(client: NbdClient, locked: boolean, state: string): Promise<Round> {
  const released = locked ? (await holdLock(databasePath(state), LOCK_MS)).exited : new Promise<void>((r) => { setTimeout(r, LOCK_MS); });
  let done = false;
  void released.then(() => { done = true; });
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const t0 = performance.now();
  let ops = 0;
  while (!done && ops < 10_000_000) {
    const data = Buffer.alloc(4096, ops & 0xff);
    await client.write((ops % 64) * 4096, data);
    await client.read((ops % 64) * 4096, 4096);
    ops++;
  }
  h.disable();
  return { locked, maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6, opsPerS: ops / ((performance.now() - t0) / 1000) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(): Promise<void> {
  const dir = scratch('nbdraid-bench-evloop-');
  try {
    const state = path.join(dir, 'state');
    const members = [0, 1, 2, 3].map((i) => path.join(dir, `m${i}`));
    execFileSync(process.execPath, [cli, '--state', state, 'create', 'ev', ...members, '--size', '64M', '--chunk', '64K'], { stdio: 'ignore' });
    const sock = path.join(dir, 'ev.sock');
    const ctl = await Controller.start({ stateDir: state, arrayName: 'ev', listen: { path: sock }, log: () => {} });
    const client = await NbdClient.connect({ path: sock, exportName: 'ev' });
    await client.write(0, Buffer.alloc(256 * 1024, 1)); // the region leased and dirty before any round
    const rounds: Round[] = [];
    for (let i = 0; i < ROUNDS; i++) for (const locked of [false, true]) rounds.push(await round(client, locked, state));
    await client.disconnect();
    await ctl.stop();
    const rows = [false, true].map((locked) => {
      const rs = rounds.filter((r) => r.locked === locked);
      return { locked, maxMs: median(rs.map((r) => r.maxMs)), p99Ms: median(rs.map((r) => r.p99Ms)), opsPerS: median(rs.map((r) => r.opsPerS)) };
    });
    console.log(`\nevent-loop delay of a controller serving a held region, ${ROUNDS} rounds of ${LOCK_MS} ms each (medians)\n`);
    console.log(table(['database', 'max delay ms', 'p99 delay ms', 'write+read /s', `goal max < ${GOAL_MS} ms`], rows.map((r) => [
      r.locked ? 'write-locked by another process' : 'idle', r.maxMs.toFixed(1), r.p99Ms.toFixed(1), r.opsPerS.toFixed(0),
      r.locked ? (r.maxMs < GOAL_MS && r.opsPerS > 0 ? 'met' : 'MISSED') : '',
    ])));
    console.log(`\n${await saveResult('evloop', { rounds, rows })}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
