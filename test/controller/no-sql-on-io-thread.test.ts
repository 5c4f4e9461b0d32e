// Invariant 10, counted: once a controller serves, the thread that serves NBD runs no SQL. Every
// statement this process runs on its own thread goes through better-sqlite3's Statement and
// Database methods, which the test wraps; the coordination thread loads its own copy of the
// module, so what it runs is not counted. While the count is on, the controller serves writes
// and reads over several regions (lease takes, write intent, the superblocks going active), a
// member is failed from another process, the controller rebuilds onto the spare (assignment,
// task, partitions, completion action, superblocks), idles until its regions go clean, and runs a
// parity check started from another process. Any SQL left on the I/O thread shows up as a count
// with its statement text.
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { Controller } from '../../lib/controller/controller.js';
import type { LocalCoordinator } from '../../lib/coordination/coordinator.js';
import { NbdClient } from '../../lib/transport/client.js';
import { safeTeardown } from '../../harness/cleanup.js';
import { createArray } from '../../harness/raid-array.js';
import { seededBytes } from '../helpers/prng.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitUntil } from '../helpers/deadline.js';

interface Counting { on: boolean; seen: Map<string, number> }

/** Wraps the statement-running methods of this thread's better-sqlite3; returns the counter. */
function countStatements(): Counting {
  const c: Counting = { on: false, seen: new Map() };
  const probe = new Database(':memory:');
  const statementProto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<string, unknown>;
  probe.close();
  const note = (sql: string) => { if (c.on) c.seen.set(sql, (c.seen.get(sql) ?? 0) + 1); };
  for (const m of ['run', 'get', 'all', 'iterate']) {
    const orig = statementProto[m] as (...a: unknown[]) => unknown;
    statementProto[m] = function (this: { source: string }, ...a: unknown[]) {
      note(this.source);
      return orig.apply(this, a);
    };
  }
  const dbProto = Database.prototype as unknown as Record<string, unknown>;
  for (const m of ['exec', 'pragma']) {
    const orig = dbProto[m] as (...a: unknown[]) => unknown;
    dbProto[m] = function (this: unknown, sql: string, ...a: unknown[]) {
      note(`${m} ${sql}`);
      return orig.apply(this, [sql, ...a]);
    };
  }
  return c;
}

t.test('a serving controller runs no SQL on the thread that serves NBD', async (t) => {
  const counting = countStatements();
  const dir = tempDir(t, 'nbdraid-nosql-');
  // 3 x 32 MiB of data in 64 KiB chunks: regions of 128 stripes (24 MiB), four of them.
  const arr = await createArray({ dir, name: 'ns', members: 4, memberSize: '32M', chunk: '64K' });
  const spare = path.join(dir, 'spare');
  await arr.cli('add-spare', 'ns', spare, '--size', '32M');
  const sock = path.join(dir, 'ns.sock');
  const ctl = await Controller.start({ stateDir: arr.state, arrayName: 'ns', listen: { path: sock }, log: () => {} });
  safeTeardown(t, 'controller stop', () => ctl.stop());
  const client = await NbdClient.connect({ path: sock, exportName: 'ns' });
  safeTeardown(t, 'client close', () => client.close());

  counting.on = true;
  const regionBytes = 128 * 3 * 64 * 1024;
  const written: { at: number; data: Buffer }[] = [];
  for (let r = 0; r < 4; r++) {
    const data = seededBytes(256 * 1024, 100 + r);
    const at = r * regionBytes + 4096 * r;
    await client.write(at, data);
    written.push({ at, data });
  }
  await client.flush();
  for (const w of written) t.ok((await client.read(w.at, w.data.length)).equals(w.data), `read back at ${w.at}`);

  await arr.cli('fail', 'ns', '--member', '1');
  const status = () => arr.json<{ slots: string; members: { slot: number | null; state: string; path: string }[] }>('status', 'ns');
  await waitUntil(async () => {
    const s = await status();
    return s.slots === 'UUUU' && s.members.some((m) => m.path === spare && m.state === 'active');
  }, 120_000, 'the rebuild onto the spare to finish', 500);
  let tasks: { task: { kind: string; state: string } }[] = [];
  await waitUntil(async () => (tasks = await arr.json<{ task: { kind: string; state: string } }[]>('tasks', '--all')).every((x) => x.task.state === 'DONE'), 60_000, 'the rebuild task to be DONE', 500)
    .catch((err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(tasks)}`); });
  for (const w of written) t.ok((await client.read(w.at, w.data.length)).equals(w.data), `read back at ${w.at} after the rebuild`);

  const check = await arr.json<{ state: string; result: { mismatches: number } }>('check', 'ns');
  t.equal(check.state, 'DONE', 'the check ran to its end');
  t.equal(check.result?.mismatches, 0, 'a check started from another process finds 0 mismatches');
  // Idle regions go clean after about 5 s, and the superblocks with them.
  await waitUntil(async () => (await arr.json<{ state: string }[]>('examine', arr.members[0], spare)).every((x) => x.state === 'clean'),
    60_000, 'the superblocks to say clean once the regions idle', 500);
  counting.on = false;
  const seen = [...counting.seen.entries()].map(([sql, n]) => `${n} x ${sql.replace(/\s+/g, ' ').slice(0, 120)}`);
  // The counter does see this thread's statements: one read of the main connection, counted.
  counting.seen.clear();
  counting.on = true;
  (ctl.coord as LocalCoordinator).arrays.get('ns');
  counting.on = false;
  t.ok(counting.seen.size > 0, 'a statement of this thread is counted (the counter works)');
  t.same(seen, [], 'no statement ran on the I/O thread while serving');
});
