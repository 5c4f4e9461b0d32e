// The CLI verbs on PostgreSQL (--coordination URI) against the same verbs on SQLite (--state):
// one sequence of verbs on small member files (create, list, assemble, status, throttle, controllers,
// check --no-wait and the task actions, fail / remove / add-spare on an unserved array, events)
// gives the same results on both once ids, times, uuids and directories are set aside. Also:
// a bad --coordination, an unreachable server, and --state left alone when PostgreSQL is used.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { openAdminStore } from '../../lib/coordination/admin.js';
import { type CoordinationTarget, coordinationTarget } from '../../lib/coordination/target.js';
import { postgresBin, startPostgres, type Postgres } from '../helpers/postgres.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cmd', 'nbdraid.js');

interface Run { code: number; stdout: string; stderr: string }
interface Step { code: number; out: unknown; err: string }

async function cli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function tempDir(t: Test, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Keys whose values differ between any two runs (ids, clocks, random uuids). */
const VOLATILE = new Set(['id', 'at', 'createdAt', 'updatedAt', 'writtenAt', 'ctime', 'uuid', 'deviceUuid', 'heartbeatAt', 'startedAt', 'finishedAt', 'task', 'taskId']);

function normalize(v: unknown, dir: string): unknown {
  if (typeof v === 'string') return v.split(dir).join('<DIR>');
  if (Array.isArray(v)) return v.map((x) => normalize(x, dir));
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, VOLATILE.has(k) && x !== null ? '*' : normalize(x, dir)]));
  }
  return v;
}

/** The sequence, run through `args` (the backend's global options); every step's exit code and normalized JSON output. */
async function sequence(t: Test, backend: string[]): Promise<{ steps: Record<string, Step>; state: string }> {
  const dir = tempDir(t, 'nbdraid-clipg-');
  const state = join(dir, 'state');
  const m = (i: number) => join(dir, `m${i}.img`);
  const env = { NBDRAID_COORDINATION: '' };
  const steps: Record<string, Step> = {};
  const step = async (label: string, json: boolean, ...args: string[]): Promise<Run> => {
    const r = await cli(env, '--state', state, ...backend, ...args);
    let out: unknown = r.stdout.split(dir).join('<DIR>');
    if (json && r.code === 0) out = normalize(JSON.parse(r.stdout), dir);
    steps[label] = { code: r.code, out, err: r.stderr.split(dir).join('<DIR>').replace(/task \d+/g, 'task N') };
    return r;
  };
  await step('create', true, 'create', 'md0', m(0), m(1), m(2), '--size', '4M', '--chunk', '64K', '--json');
  await step('create again', false, 'create', 'md0', m(0), m(1), m(2), '--size', '4M');
  await step('list', true, 'list', '--json');
  await step('assemble', true, 'assemble', 'md0', m(0), m(1), m(2), '--json');
  await step('assemble elsewhere', false, 'assemble', 'other', m(0), m(1), m(2));
  await step('status', true, 'status', 'md0', '--json');
  await step('throttle set', true, 'throttle', 'md0', '--min', '10', '--max', '100', '--inflight', '4', '--json');
  await step('throttle show', true, 'throttle', 'md0', '--json');
  await step('throttle bad', false, 'throttle', 'md0', '--min', '100', '--max', '10');
  await step('controllers', true, 'controllers', '--json');
  await step('tasks empty', true, 'tasks', '--json');
  const started = await step('check', true, 'check', 'md0', '--no-wait', '--json');
  const id = String((JSON.parse(started.stdout) as { task: number }).task);
  await step('tasks', true, 'tasks', '--json');
  await step('pause', true, 'tasks', 'pause', id, '--json');
  await step('pause again', false, 'tasks', 'pause', id);
  await step('resume', true, 'tasks', 'resume', id, '--json');
  await step('cancel', true, 'tasks', 'cancel', id, '--json');
  await step('tasks all', true, 'tasks', '--all', '--json');
  await step('fail', false, 'fail', 'md0', '--member', '0');
  await step('status degraded', true, 'status', 'md0', '--json');
  await step('remove', false, 'remove', 'md0', '--member', '0');
  await step('add-spare', false, 'add-spare', 'md0', m(3), '--size', '4M');
  await step('list after', true, 'list', '--json');
  await step('no such array', false, 'status', 'md9');
  await step('events', true, 'events', '--limit', '100', '--json');
  return { steps, state };
}

const server = postgresBin() ? await startPostgres(t) : undefined;
const skip = !server && "needs Debian's postgresql package";
let databases = 0;

async function database(pg: Postgres): Promise<string> {
  const name = `cli${++databases}`;
  await pg.psql(`CREATE DATABASE ${name}`);
  return pg.uri(name);
}

t.test('the same verbs give the same results on PostgreSQL as on SQLite', { skip }, async (t) => {
  const uri = await database(server!);
  const onSqlite = await sequence(t, []);
  const onPg = await sequence(t, ['--coordination', uri]);
  t.equal(onPg.steps.create.code, 0, 'create succeeded on PostgreSQL');
  t.equal(onPg.steps.fail.code, 0, 'fail succeeded on PostgreSQL');
  t.equal(onPg.steps['add-spare'].code, 0, 'add-spare succeeded on PostgreSQL');
  t.not(onPg.steps['create again'].code, 0, 'a second create of the same name is refused');
  t.same(onPg.steps.controllers.out, [], 'no controllers');
  for (const label of Object.keys(onSqlite.steps)) t.same(onPg.steps[label], onSqlite.steps[label], label);
  t.notOk(existsSync(join(onPg.state, 'nbdraid.db')), 'no SQLite database in --state when PostgreSQL is used');
  t.ok(existsSync(join(onSqlite.state, 'nbdraid.db')), 'the SQLite run used its --state');
  // The rows are PostgreSQL's.
  const rows = await server!.psql('SELECT name, revision FROM arrays', `cli${databases}`);
  t.match(rows.stdout.trim(), /^md0\|\d+$/, 'the array is recorded in PostgreSQL');
});

t.test('NBDRAID_COORDINATION selects PostgreSQL as --coordination does', { skip }, async (t) => {
  const uri = await database(server!);
  const dir = tempDir(t, 'nbdraid-clipg-');
  const empty = await cli({ NBDRAID_COORDINATION: uri }, '--state', dir, 'list');
  t.match(empty.stdout, /no arrays: PostgreSQL at postgresql:.* knows no arrays/, 'the empty message names the database');
  const made = await cli({ NBDRAID_COORDINATION: uri }, '--state', dir, 'create', 'md1', join(dir, 'a'), join(dir, 'b'), join(dir, 'c'), '--size', '4M');
  t.equal(made.code, 0, made.stderr);
  const listed = await cli({ NBDRAID_COORDINATION: '' }, '--state', dir, '--coordination', uri, 'list', '--json');
  t.same((JSON.parse(listed.stdout) as { name: string }[]).map((r) => r.name), ['md1']);
  t.notOk(existsSync(join(dir, 'nbdraid.db')), 'no SQLite database created');
});

t.test('a --coordination that is not a database URI is refused, nothing made', async (t) => {
  const dir = tempDir(t, 'nbdraid-clipg-');
  const r = await cli({ NBDRAID_COORDINATION: '' }, '--state', dir, '--coordination', 'mysql://u:secret@h/db', 'list');
  t.equal(r.code, 1);
  t.match(r.stderr, /--coordination.*not a coordination database.*postgres:\/\//);
  t.notMatch(r.stderr, /secret/, 'no password shown');
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.notOk(existsSync(join(dir, 'nbdraid.db')), 'nothing created');
  const bound = await cli({ NBDRAID_COORDINATION: '' }, '--state', dir, '--coordination', 'postgres://u@127.0.0.1:1/x', '--dead-after', '0.1', 'list');
  t.equal(bound.code, 1);
  t.match(bound.stderr, /--dead-after.*at least/);
  const nan = await cli({ NBDRAID_COORDINATION: '' }, '--state', dir, '--dead-after', 'soon', 'list');
  t.equal(nan.code, 1);
  t.match(nan.stderr, /--dead-after.*positive number of seconds/);
  t.notOk(existsSync(join(dir, 'nbdraid.db')), 'nothing created');
});

t.test('an unreachable PostgreSQL: exit 1, one line naming it without its password, no stack', async (t) => {
  const dir = tempDir(t, 'nbdraid-clipg-');
  for (const args of [['list'], ['status', '--json'], ['tasks'], ['controllers'], ['events']]) {
    const r = await cli({ NBDRAID_COORDINATION: '' }, '--state', dir, '--coordination', 'postgres://admin:hunter2@127.0.0.1:1/x', ...args);
    t.equal(r.code, 1, `${args[0]}: exit 1`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${args[0]}: one line: ${r.stderr}`);
    t.match(r.stderr, /cannot reach PostgreSQL at postgres:\/\/admin:\*\*\*@127\.0\.0\.1:1\/x.*check/, `${args[0]}: names the server`);
    t.notMatch(r.stderr, /hunter2|\n\s+at /, `${args[0]}: no password, no stack`);
    t.equal(r.stdout, '', `${args[0]}: nothing printed`);
  }
  t.notOk(existsSync(join(dir, 'nbdraid.db')), 'no SQLite database created');
});

t.test('AdminStore: resync marks, update refusals and array removal alike on both backends', { skip }, async (t) => {
  const uri = await database(server!);
  const run = async (target: CoordinationTarget): Promise<unknown> => {
    const store = await openAdminStore(target);
    try {
      const rec = { name: 'md0', uuid: 'u', level: 5, layout: 'left-symmetric', chunk: 65536, raidDisks: 3, dataOffset: 2048, memberSize: 65536, members: [] };
      await store.createArray(rec);
      const refused = await store.updateArray('md0', (r) => { r.name = 'md1'; }).catch((e: Error) => e.message);
      const bumped = await store.updateArray('md0', (r) => { r.chunk = 131072; });
      await store.requireResync('md0', [0, 1, 2]);
      await store.recordWritten('md0', 7, { clean: false });
      const snap = await store.superblockSnapshot('md0');
      await store.removeArray('md0');
      const gone = await store.removeArray('md0').catch((e: Error) => e.message);
      const missingTask = await store.pauseTask(99).catch((e: Error) => e.message);
      return normalize({ refused, revision: bumped.revision, snap, gone, missingTask, revisionAfter: await store.revision('md0'),
        events: await store.listEvents({ limit: 100 }) }, '\0');
    } finally {
      await store.close();
    }
  };
  const dir = tempDir(t, 'nbdraid-clipg-');
  const onSqlite = await run(coordinationTarget(dir));
  const onPg = await run(coordinationTarget(dir, uri));
  t.same(onPg, onSqlite, 'same results and events');
  t.match(onPg, { snap: { unsynced: 3, written: { events: 7 } }, revision: 2 });
  const marks = await server!.psql('SELECT count(*) FROM resync_regions', `cli${databases}`);
  t.equal(marks.stdout.trim(), '3', 'the resync marks are in PostgreSQL');
});
