// The coordination object as a serving controller uses it (Coordinator.connect and its
// asynchronous calls, completion actions, close), written once and run on both backends: the
// SQLite database of a state directory and PostgreSQL on a throw-away server. What tasks.test.ts
// checks with the synchronous SQLite calls, here through the one seam both backends share:
// claims and the owner's refusals, a completion action run once on the initiator (or on a live
// adopter), a failing action failing its task, a closing controller's work handed on, one task of
// a kind per array at a time. Claim policies (setPolicy) exist on SQLite only; tasks.test.ts
// covers them. Across processes: lease-worker.ts on either backend.
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator } from '../../lib/coordination/coordinator.js';
import { openDatabase } from '../../lib/coordination/db.js';
import type { PartitionRef } from '../../lib/coordination/partitions.js';
import { PgBackend } from '../../lib/coordination/pg/index.js';
import { TERMINAL_TASK_STATES, type TaskRecord } from '../../lib/coordination/records.js';
import type { CoordinationTarget } from '../../lib/coordination/target.js';
import { TaskStore, type NewTask } from '../../lib/coordination/tasks.js';
import { tempStateDir } from '../helpers/coordination.js';
import { waitUntil, withDeadline } from '../helpers/deadline.js';
import { killHard, spawnNode } from '../helpers/processes.js';
import { postgresBin, startPostgres, type Postgres } from '../helpers/postgres.js';

/** PostgreSQL's T here: the least accepted, so that nothing waits long for a bound. */
const DEAD_AFTER_MS = 1000;
const LEASE_WORKER = join(dirname(fileURLToPath(import.meta.url)), 'workers', 'lease-worker.js');
const WAIT_MS = 15_000;
/** The lease worker beats every 100 ms (its reapMs): its last beat before a kill is at most this old. */
const HEARTBEAT_MS = 100;
const ARRAY = 'md0';

interface Backend {
  name: string;
  target: CoordinationTarget;
  /** What a worker process is given: the state directory, or the database's URI. */
  where: string;
  /** A task created as the CLI does, with no initiator (a live controller adopts it). */
  cliTask(task: Omit<NewTask, 'initiator'>): Promise<TaskRecord>;
}

function sqlite(t: Test): Backend {
  const stateDir = tempStateDir(t);
  const store = new TaskStore(openDatabase(stateDir));
  return {
    name: 'sqlite',
    target: { kind: 'sqlite', stateDir },
    where: stateDir,
    cliTask: async (task) => store.create({ ...task, initiator: null }),
  };
}

let databases = 0;
async function postgres(t: Test, server: Postgres): Promise<Backend> {
  const name = `backends${++databases}`;
  await server.psql(`CREATE DATABASE ${name}`);
  const uri = server.uri(name);
  const admin = await PgBackend.open(uri, { deadAfterMs: DEAD_AFTER_MS });
  t.teardown(() => admin.close());
  return {
    name: 'postgres',
    target: { kind: 'postgres', uri, deadAfterMs: DEAD_AFTER_MS },
    where: uri,
    cliTask: (task) => admin.createTask({ ...task, initiator: null }),
  };
}

/** A registered controller, closed (if the scenario did not) when the test ends. */
async function controller(t: Test, b: Backend): Promise<Coordinator> {
  const c = await Coordinator.connect(b.target, { tickMs: 5, reapMs: 100, onError: (err) => t.fail(`coordination error: ${err.message}`) });
  t.teardown(() => c.close());
  return c;
}

const parts = (n: number, stripes = 16) =>
  Array.from({ length: n }, (_, i) => ({ stripeStart: i * stripes, stripeEnd: (i + 1) * stripes, instructions: { op: 'copy', i } }));

const codeOf = (p: Promise<unknown>): Promise<string | undefined> => p.then(() => undefined, (e: { code?: string }) => e.code ?? 'none');

async function taskOf(c: Coordinator, id: number): Promise<TaskRecord> {
  const task = (await c.thread.ops.tasks(ARRAY, false)).find((x) => x.id === id);
  if (!task) throw new Error(`task ${id} of ${ARRAY} not found`);
  return task;
}

/** The task once it reached DONE, FAILED or CANCELLED (bounded). */
function finished(c: Coordinator, id: number): Promise<TaskRecord> {
  return waitUntil(async () => {
    const task = await taskOf(c, id);
    return TERMINAL_TASK_STATES.includes(task.state) ? task : undefined;
  }, WAIT_MS, `task ${id} finished`, 20);
}

/** Claims until nothing is left, completing each; returns the indexes claimed. */
async function drain(c: Coordinator, taskId: number): Promise<number[]> {
  const got: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const cl = await c.async.claim({ taskId });
    if (!cl) break;
    got.push(cl.partition.idx);
    await c.async.complete({ taskId, idx: cl.partition.idx });
  }
  return got;
}

type Scenario = (t: Test, b: Backend) => Promise<void>;

const scenarios: Record<string, Scenario> = {
  'claim, checkpoint, complete: lowest index first, owner only': async (t, b) => {
    const [a, c] = [await controller(t, b), await controller(t, b)];
    const task = await a.async.createTask({ kind: 'scrub', arrayName: ARRAY, dataset: { member: 2 }, partitions: parts(3), maxAttempts: 2 });
    t.match(task, { kind: 'scrub', arrayName: ARRAY, dataset: { member: 2 }, initiator: a.id, state: 'RUNNING', partitionsTotal: 3, partitionsDone: 0 });
    const c0 = await a.async.claim();
    const c1 = await c.async.claim();
    t.match(c0?.partition, { idx: 0, state: 'IN_PROGRESS', owner: a.id, instructions: { op: 'copy', i: 0 } });
    t.match(c1?.partition, { idx: 1, owner: c.id });
    const p0: PartitionRef = { taskId: task.id, idx: 0 };
    const refusals = [['complete', codeOf(c.async.complete(p0))], ['checkpoint', codeOf(c.async.checkpoint(p0, {}))], ['fail', codeOf(c.async.fail(p0, 'x'))], ['release', codeOf(c.async.release(p0))]] as const;
    for (const [what, code] of refusals) t.equal(await code, 'EPERM', `another controller's ${what} of a partition it does not own is refused`);
    t.equal(await a.async.checkpoint(p0, { stripe: 5 }, 1000), 'RUNNING');
    t.equal(await a.async.checkpoint(p0, { stripe: 9 }, 500), 'RUNNING');
    t.equal(await a.async.complete(p0, 100), false, 'not the last partition');
    t.equal(await codeOf(a.async.complete(p0)), 'ESTALE', 'a partition completes once');
    t.equal(await codeOf(a.async.checkpoint(p0, {})), 'ESTALE');
    t.equal(await codeOf(a.async.complete({ taskId: task.id, idx: 7 })), 'ENOENT');
    const [done] = (await a.thread.ops.partitions(task.id)).filter((p) => p.idx === 0);
    t.match(done, { state: 'COMPLETE', owner: null, bytes: 1600, checkpoint: { stripe: 9 } });
    t.equal((await c.async.claim())?.partition.idx, 2, 'the next READY one');
    t.equal(await c.async.complete({ taskId: task.id, idx: 1 }), false);
    t.equal(await c.async.complete({ taskId: task.id, idx: 2 }), true, 'the last partition says so');
    t.equal(await c.async.claim(), undefined, 'nothing left to claim');
  },

  'two controllers draining at once never get the same partition': async (t, b) => {
    const [a, c] = [await controller(t, b), await controller(t, b)];
    a.onCompletion('scrub', () => null);
    const task = await a.async.createTask({ kind: 'scrub', arrayName: ARRAY, partitions: parts(40) });
    const [ga, gc] = await Promise.all([drain(a, task.id), drain(c, task.id)]);
    t.same(ga.filter((i) => gc.includes(i)), [], 'no partition claimed by both');
    t.same([...ga, ...gc].sort((x, y) => x - y), Array.from({ length: 40 }, (_, i) => i), 'each claimed once');
    t.equal((await finished(a, task.id)).partitionsDone, 40);
  },

  'failed attempts: READY with the checkpoint, then the last allowed fails the task with the reason': async (t, b) => {
    const a = await controller(t, b);
    const task = await a.async.createTask({ kind: 'scrub', arrayName: ARRAY, partitions: parts(2), maxAttempts: 2 });
    const ref = { taskId: task.id, idx: 0 };
    await a.async.claim();
    await a.async.checkpoint(ref, { at: 3 });
    t.equal(await a.async.fail(ref, 'member read error'), 'READY', 'one attempt left');
    const again = await a.async.claim();
    t.match(again?.partition, { idx: 0, attempts: 1, checkpoint: { at: 3 } }, 'claimed again from its checkpoint');
    t.equal(await a.async.fail(ref, 'member read error again'), 'FAILED');
    const end = await taskOf(a, task.id);
    t.equal(end.state, 'FAILED');
    t.match(end.reason, /member read error again/);
    t.equal(await a.async.claim(), undefined, 'a failed task offers nothing more');
  },

  'a completion action runs once, on the initiator, after the last partition': async (t, b) => {
    const [a, c] = [await controller(t, b), await controller(t, b)];
    const ran: string[] = [];
    a.onCompletion('scrub', (task) => { ran.push(`a:${task.id}`); return { mismatches: 0 }; });
    c.onCompletion('scrub', (task) => { ran.push(`c:${task.id}`); return { mismatches: 0 }; });
    const task = await a.async.createTask({ kind: 'scrub', arrayName: ARRAY, partitions: parts(2) });
    t.same(await drain(c, task.id), [0, 1], 'the other controller did all the work');
    const done = await finished(c, task.id);
    t.equal(done.state, 'DONE');
    t.same(done.result, { mismatches: 0 });
    t.same(ran, [`a:${task.id}`], 'the initiator ran it, once');
    const kinds = (await a.thread.ops.events({ taskId: task.id })).map((e) => e.kind).slice(-3);
    t.same(kinds, ['task.partitions-complete', 'task.completing', 'task.done']);
  },

  'a failing completion action fails the task with the reason': async (t, b) => {
    const a = await controller(t, b);
    a.onCompletion('resync', () => { throw new Error('superblock write failed'); });
    const task = await a.async.createTask({ kind: 'resync', arrayName: ARRAY, partitions: parts(1) });
    await drain(a, task.id);
    const end = await finished(a, task.id);
    t.equal(end.state, 'FAILED');
    t.match(end.reason, /completion action failed: superblock write failed/);
  },

  'a task without initiator is adopted by a live controller, which runs its completion': async (t, b) => {
    const a = await controller(t, b);
    const ran: number[] = [];
    a.onCompletion('check', (task) => { ran.push(task.id); });
    const task = await b.cliTask({ kind: 'check', arrayName: ARRAY, partitions: parts(1) });
    t.equal(task.initiator, null);
    await drain(a, task.id);
    t.equal((await finished(a, task.id)).state, 'DONE');
    t.equal((await taskOf(a, task.id)).initiator, a.id, 'adopted');
    t.same(ran, [task.id]);
  },

  'a closing controller gives its partitions back with their checkpoints, its tasks to a live one': async (t, b) => {
    const [a, c] = [await controller(t, b), await controller(t, b)];
    const ran: string[] = [];
    c.onCompletion('scrub', () => { ran.push('c'); });
    const task = await a.async.createTask({ kind: 'scrub', arrayName: ARRAY, partitions: parts(2) });
    await a.async.claim();
    await a.async.checkpoint({ taskId: task.id, idx: 0 }, { s: 7 });
    await a.close();
    t.equal(await c.thread.ops.liveControllers(), 1, 'the closed controller is no longer live');
    t.equal(await codeOf(a.async.claim()), 'ESHUTDOWN', 'a closed controller makes no more calls');
    const cl = await c.async.claim();
    t.match(cl?.partition, { idx: 0, checkpoint: { s: 7 } }, 'its partition came back READY with its checkpoint');
    await c.async.complete({ taskId: task.id, idx: 0 });
    await drain(c, task.id);
    const end = await finished(c, task.id);
    t.equal(end.state, 'DONE');
    t.equal(end.initiator, c.id, 'the live controller inherited the task');
    t.same(ran, ['c']);
  },

  'createTaskUnlessActive: one task of a kind per array at a time, from any number of controllers': async (t, b) => {
    const [a, c] = [await controller(t, b), await controller(t, b)];
    for (const x of [a, c]) x.onCompletion('resync', () => 'done');
    const task = { kind: 'resync', arrayName: ARRAY, partitions: parts(1) };
    const made = await Promise.all([a.async.createTaskUnlessActive(task), c.async.createTaskUnlessActive(task), a.async.createTaskUnlessActive(task)]);
    t.equal(made.filter((x) => x !== undefined).length, 1, 'three concurrent starts create one task');
    t.ok(await a.async.createTaskUnlessActive({ ...task, arrayName: 'md1' }), 'another array gets its own');
    t.ok(await c.async.createTaskUnlessActive({ ...task, kind: 'check' }), 'another kind on the same array too');
    const first = made.find((x) => x !== undefined)!;
    await drain(a, first.id);
    t.equal((await finished(a, first.id)).state, 'DONE');
    t.ok(await c.async.createTaskUnlessActive(task), 'once it finished, a new one can start');
  },

  'a task whose creation is answered as its controller closes is left to a live controller': async (t, b) => {
    const [a, c] = [await controller(t, b), await controller(t, b)];
    let ran = 0;
    c.onCompletion('resync', () => { ran++; });
    const made = a.async.createTaskUnlessActive({ kind: 'resync', arrayName: ARRAY, dataset: { regions: [0] }, partitions: parts(1) });
    await a.close();
    const task = await made;
    t.ok(task, 'the task was created');
    t.equal((await taskOf(c, task!.id)).initiator, null, 'its stopped initiator gave it up');
    await drain(c, task!.id);
    t.equal((await finished(c, task!.id)).state, 'DONE', 'the live controller adopted it and ran its completion');
    t.equal(ran, 1);
  },
};

/** Across real processes: region leases under contention, and a holder that is SIGKILLed. */
const crossProcess: Record<string, Scenario> = {
  'two processes hammer overlapping regions: mutual exclusion holds': async (t, b) => {
    const dir = tempStateDir(t, 'nbdraid-slots-');
    const slots = join(dir, 'slots');
    writeFileSync(slots, Buffer.alloc(4 * 8));
    const holds = b.name === 'sqlite' ? 400 : 200;
    const workers = [0, 1].map(() => spawnNode(LEASE_WORKER, [b.where, 'hammer', slots, '4', String(holds)]));
    t.teardown(() => { for (const w of workers) w.proc.kill('SIGKILL'); });
    const results = await Promise.all(workers.map((w) => w.waitFor(/^done (\d+) (\d+) (\d+)$/, 90_000)));
    for (const [, done, violations, wanted] of results) {
      t.equal(Number(done), holds, 'every hold ran');
      t.equal(Number(violations), 0, 'nobody changed a slot during a hold');
      t.ok(Number(wanted) > 0, `the holder was asked for its regions (${wanted} times)`);
    }
    t.same((await Promise.all(workers.map((w) => w.exited))).map((e) => e.code), [0, 0]);
  },

  'a SIGKILLed holder: its leases pass on, the dirty ones are recorded for resync': async (t, b) => {
    const holder = spawnNode(LEASE_WORKER, [b.where, 'hold', '0,1,2,3', '1,2']);
    t.teardown(() => holder.proc.kill('SIGKILL'));
    const [, holderText] = await holder.waitFor(/^held (\d+)$/, 30_000);
    const holderId = Number(holderText);
    const c = await controller(t, b);
    const leases = c.leases(ARRAY);
    let granted = false;
    const waiting = leases.acquire(1, { write: false }).then(() => { granted = true; });
    await new Promise((r) => setTimeout(r, 300));
    t.equal(granted, false, 'not granted while the holder lives');
    t.equal(await c.thread.ops.liveControllers(), 2);
    const killedAt = performance.now();
    await withDeadline(killHard(holder), 10_000, 'the holder exiting on SIGKILL');
    await withDeadline(waiting, 30_000, 'region 1 granted once its holder is dead');
    const after = performance.now() - killedAt;
    if (b.name === 'postgres') t.ok(after >= DEAD_AFTER_MS - HEARTBEAT_MS, `granted ${after.toFixed(0)} ms after the kill: not before T (${DEAD_AFTER_MS} ms) from its last heartbeat`);
    else t.pass(`granted ${after.toFixed(0)} ms after the kill`);
    await waitUntil(async () => (await c.thread.ops.pendingResync(ARRAY)).length === 2, WAIT_MS, 'the dead holder\'s dirty regions queued');
    t.same((await c.thread.ops.pendingResync(ARRAY)).sort(), [1, 2], 'its written regions wait for a resync');
    t.equal(await c.thread.ops.liveControllers(), 1, 'the holder is dead');
    const dead = await c.thread.ops.events({ kindPrefix: 'controller.dead' });
    t.match(dead[0]?.detail, { controller: holderId, dirtyRegions: [{ region: 1 }, { region: 2 }] });
    await c.async.clearResync(ARRAY, [1, 2]);
    t.same(await c.thread.ops.pendingResync(ARRAY), []);
    leases.release(1, { write: false });
  },
};

const server = postgresBin() ? await startPostgres(t) : undefined;

for (const [name, scenario] of Object.entries({ ...scenarios, ...crossProcess })) {
  t.test(`sqlite: ${name}`, (tt) => scenario(tt, sqlite(tt)));
  t.test(`postgres: ${name}`, { skip: !server && 'needs Debian\'s postgresql package' }, async (tt) => scenario(tt, await postgres(tt, server!)));
}
