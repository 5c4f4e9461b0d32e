// Coordination stays off the thread that serves NBD: while another process holds the
// coordination database's write lock for 2 s, a controller keeps serving I/O on the regions it
// already holds, and a request for a region it does not hold waits for the lease (it needs the
// lock) without stopping anything else. A statement waiting out busy_timeout on the I/O thread stops all I/O for the
// whole lock; the test asserts no gap between I/Os of even half of it, so a busy machine's
// scheduling noise cannot fail it. The event-loop delay itself (goal: max < 50 ms) is reported
// here and measured by the benchmark, not asserted.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { Controller } from '../../lib/controller/controller.js';
import { databasePath } from '../../lib/coordination/db.js';
import { NbdClient } from '../../lib/transport/client.js';
import { safeTeardown } from '../../harness/cleanup.js';
import { withDeadline } from '../helpers/deadline.js';
import { createArray } from '../../harness/raid-array.js';
import { tempDir } from '../helpers/temp-dir.js';

const LOCK_MS = 2000;
const MAX_GAP_MS = LOCK_MS / 2;
const ROUNDS = 2;
const REGION_BYTES = 128 * 3 * 64 * 1024;

/** A child process that takes the database's write lock, says "locked", holds it, then commits. */
function holdWriteLock(db: string, ms: number) {
  const src = `
    const Database = require(${JSON.stringify(require_('better-sqlite3'))});
    const db = new Database(process.argv[1], { timeout: 10000 });
    db.exec('BEGIN IMMEDIATE');
    process.stdout.write('locked\\n');
    // Sleeps holding the lock, without spinning a core the controller under test needs.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.argv[2]));
    db.exec('COMMIT');
    process.stdout.write('released\\n');
    db.close();`;
  const child = spawn(process.execPath, ['-e', src, db, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const seen = (word: string) => new Promise<void>((resolve, reject) => {
    lines.on('line', (l) => { if (l === word) resolve(); });
    child.once('exit', (code) => reject(new Error(`lock holder exited (${code}) before '${word}'`)));
  });
  return { child, locked: seen('locked'), released: seen('released') };
}

/**
 * I/O on held regions while another process holds the write lock for LOCK_MS; meanwhile `other`
 * writes `unheld` bytes at `unheldAt`, in a region whose lease is not held yet.
 */
async function lockedRound(t: Test, state: string, client: NbdClient, other: NbdClient, unheldAt: number, unheld: Buffer) {
  const holder = holdWriteLock(databasePath(state), LOCK_MS);
  safeTeardown(t, 'lock holder kill', () => { holder.child.kill('SIGKILL'); });
  await withDeadline(holder.locked, 10_000, 'the lock holder taking the write lock');
  t.ok(writeLockIsTaken(state), 'another connection cannot take the write lock meanwhile');
  let released = false;
  const slow = other.write(unheldAt, unheld).then(() => released);
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  let ops = 0;
  let wrong = 0;
  let stop = false;
  let last = Date.now();
  let maxGapMs = 0;
  void holder.released.then(() => { stop = true; released = true; }, () => { stop = true; });
  const until = Date.now() + LOCK_MS + 10_000;
  while (!stop && Date.now() < until && ops < 1_000_000) {
    const off = (ops % 64) * 4096;
    const data = Buffer.alloc(4096, ops & 0xff);
    await client.write(off, data);
    if (!(await client.read(off, 4096)).equals(data)) wrong++;
    ops++;
    const now = Date.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }
  h.disable();
  await withDeadline(holder.released, 15_000, 'the lock holder releasing the lock');
  const slowAfterRelease = await withDeadline(slow, 15_000, 'the write to a region not held');
  if (!(await other.read(unheldAt, unheld.length)).equals(unheld)) wrong++;
  return { maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6, ops, wrong, maxGapMs, slowAfterRelease };
}

function writeLockIsTaken(state: string): boolean {
  const db = new Database(databasePath(state), { timeout: 0 });
  try {
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'SQLITE_BUSY';
  } finally {
    db.close();
  }
}

function require_(mod: string): string {
  return path.dirname(path.dirname(new URL(import.meta.resolve(mod)).pathname));
}

t.test('a locked database stalls neither the event loop nor I/O on held regions', async (t) => {
  const dir = tempDir(t, 'nbdraid-evloop-');
  // 3 x 32 MiB of data in 64 KiB chunks: regions of 128 stripes (24 MiB), four of them.
  const arr = await createArray({ dir, name: 'ev', members: 4, memberSize: '32M', chunk: '64K' });
  const sock = path.join(dir, 'ev.sock');
  const ctl = await Controller.start({ stateDir: arr.state, arrayName: 'ev', listen: { path: sock }, log: () => {} });
  safeTeardown(t, 'controller stop', () => ctl.stop());
  const client = await NbdClient.connect({ path: sock, exportName: 'ev' });
  safeTeardown(t, 'client close', () => client.close());
  const other = await NbdClient.connect({ path: sock, exportName: 'ev' });
  safeTeardown(t, 'second client close', () => other.close());

  // The region is leased and its write-intent bit set before the lock is taken.
  const block = Buffer.alloc(64 * 1024, 0x5a);
  await client.write(0, block);
  await client.flush();

  // A stall behind the lock lasts the whole 2 s in every round; a busy machine's scheduling
  // noise does not repeat in each of ROUNDS rounds, so the best round is the one judged.
  const rounds: { maxMs: number; p99Ms: number; ops: number; maxGapMs: number; slowAfterRelease: boolean }[] = [];
  let wrong = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Region round + 1 has not been touched: its lease must be taken, under the lock.
    const r = await lockedRound(t, arr.state, client, other, (round + 1) * REGION_BYTES + 4096, Buffer.alloc(4096, 0xa0 + round));
    wrong += r.wrong;
    rounds.push(r);
  }
  t.equal(wrong, 0, 'every read returned what was written just before');
  t.ok(rounds.every((r) => r.ops > 10), `I/O on a held region went on while the database was locked (${rounds.map((r) => r.ops).join(', ')} write+read pairs)`);
  const gaps = rounds.map((r) => r.maxGapMs);
  t.ok(gaps.every((g) => g < MAX_GAP_MS), `no I/O waited behind the lock: longest gap between I/Os ${gaps.join(', ')} ms (bound ${MAX_GAP_MS} ms)`);
  t.ok(rounds.every((r) => r.slowAfterRelease), 'each write to a region not held was acknowledged only after the lock was released (its lease needed it)');
  t.comment(`event-loop delay while locked: ${rounds.map((r) => `max ${r.maxMs.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms`).join('; ')}`);
  await client.flush();
});
