// A corrupt, foreign or empty coordination database, met by the real CLI: one clear line naming the
// file, what is wrong and how to rebuild the state from the members, exit code 1, never a stack.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { Coordinator } from '../../lib/coordination/coordinator.js';
import { databasePath } from '../../lib/coordination/db.js';
import { tempStateDir } from '../helpers/coordination.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cmd', 'nbdraid.js');

interface Run { code: number; stdout: string; stderr: string }

async function cli(state: string, ...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, '--state', state, ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A state directory whose database holds a few pages of real records. */
async function populated(t: Test): Promise<string> {
  const dir = tempStateDir(t);
  const c = Coordinator.open(dir, { address: '127.0.0.1:10809' });
  for (let i = 0; i < 20; i++) {
    c.createTask({ kind: 'check', arrayName: `md${i}`, partitions: Array.from({ length: 20 }, (_, k) => ({ stripeStart: k * 8, stripeEnd: k * 8 + 8 })) });
  }
  await c.close(); // every connection closed: the WAL is checkpointed into the file
  t.ok(statSync(databasePath(dir)).size > 8 * 4096, 'the database spans many pages');
  return dir;
}

const VERBS: string[][] = [['status'], ['status', '--json'], ['tasks'], ['events'], ['controllers'], ['list'], ['fail', 'md0', '--member', '0'], ['serve', 'md0']];

async function expectOneLine(t: Test, dir: string, what: RegExp): Promise<void> {
  for (const verb of VERBS) {
    const r = await cli(dir, ...verb);
    const where = `nbdraid ${verb.join(' ')}`;
    t.equal(r.code, 1, `${where}: exit code 1`);
    const lines = r.stderr.trimEnd().split('\n');
    t.equal(lines.length, 1, `${where}: one line, got: ${r.stderr}`);
    t.notMatch(r.stderr, /unexpected error|SqliteError|\n\s+at /, `${where}: no stack trace`);
    t.match(lines[0], `coordination database ${databasePath(dir)}`, `${where}: names the file`);
    t.match(lines[0], what, `${where}: says what is wrong`);
    t.match(lines[0], /nbdraid assemble/, `${where}: says how to rebuild the state`);
  }
}

t.test('a truncated database', async (t) => {
  const dir = await populated(t);
  truncateSync(databasePath(dir), Math.floor(statSync(databasePath(dir)).size / 2));
  await expectOneLine(t, dir, /damaged|truncated/);
});

t.test('a file of garbage', async (t) => {
  const dir = tempStateDir(t);
  writeFileSync(databasePath(dir), Buffer.alloc(64 * 1024, 'not a database, only some text. '));
  await expectOneLine(t, dir, /not a SQLite database/);
});

t.test('damaged pages behind an intact header', async (t) => {
  const dir = await populated(t);
  const size = statSync(databasePath(dir)).size;
  const fd = openSync(databasePath(dir), 'r+');
  for (let off = 2 * 4096; off < size - 4096; off += 3 * 4096) writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, off);
  closeSync(fd);
  t.equal(readFileSync(databasePath(dir)).subarray(0, 15).toString(), 'SQLite format 3', 'header intact');
  await expectOneLine(t, dir, /damaged/);
});

t.test('a SQLite database of another program', async (t) => {
  const dir = tempStateDir(t);
  const db = new Database(databasePath(dir));
  db.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices (total) VALUES (12.5)');
  db.close();
  await expectOneLine(t, dir, /not nbdraid's.*invoices/);
  const after = new Database(databasePath(dir), { readonly: true });
  t.same(after.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all(), [{ name: 'invoices' }], 'left unchanged');
  after.close();
});

t.test('an empty database: status says it knows no arrays and how to find them', async (t) => {
  const dir = tempStateDir(t);
  writeFileSync(databasePath(dir), '');
  const human = await cli(dir, 'status');
  t.equal(human.code, 0);
  t.match(human.stdout, /knows no arrays/);
  t.match(human.stdout, /nbdraid examine/);
  t.match(human.stdout, /nbdraid assemble/);
  const json = await cli(dir, 'status', '--json');
  t.equal(json.code, 0);
  t.same(JSON.parse(json.stdout), []);
  t.match(json.stderr, /knows no arrays.*nbdraid examine.*nbdraid assemble/);
  const list = await cli(dir, 'list');
  t.equal(list.code, 0);
  t.match(list.stdout, /knows no arrays.*nbdraid assemble/);
});

t.test('no such array: the hint names a verb that exists, and list shows the arrays', async (t) => {
  const dir = tempStateDir(t);
  const c = Coordinator.open(dir);
  c.arrays.create({
    name: 'md7', uuid: '11111111:22222222:33333333:44444444', level: 5, layout: 'left-symmetric', chunk: 65536, raidDisks: 3,
    dataOffset: 1 << 20, memberSize: 4 << 20,
    members: [0, 1, 2].map((slot) => ({ slot, path: `/srv/m${slot}`, state: 'active' as const, deviceUuid: `0000000${slot}:0:0:0`, devNumber: slot })),
  });
  c.close();
  const missing = await cli(dir, 'status', 'md9');
  t.equal(missing.code, 1);
  const hint = /'nbdraid (\w+)'/.exec(missing.stderr);
  t.ok(hint, `names a verb: ${missing.stderr}`);
  const listed = await cli(dir, hint![1]);
  t.equal(listed.code, 0, `'nbdraid ${hint![1]}' exists: ${listed.stderr}`);
  t.match(listed.stdout, /^NAME\s+UUID\s+LEVEL\s+MEMBERS\s+SIZE/);
  t.match(listed.stdout, /\nmd7\s+11111111:22222222:33333333:44444444\s+raid5\s+3\/3/);
  const json = JSON.parse((await cli(dir, 'list', '--json')).stdout);
  t.match(json, [{ name: 'md7', uuid: '11111111:22222222:33333333:44444444', level: 5, raidDisks: 3 }]);
});
