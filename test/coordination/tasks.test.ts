// Every partition and task transition, and every refusal, on one database shared by several
// controllers registered in this process (flock conflicts between separate opens of a file).
import t from 'tap';
import { openDatabase } from '../../lib/coordination/db.js';
import { Coordinator } from '../../lib/coordination/coordinator.js';
import { TaskStore } from '../../lib/coordination/tasks.js';
import { EventLog } from '../../lib/coordination/events.js';
import { afterPrevious, whenEligible } from '../../lib/coordination/claim-policy.js';
import { tempStateDir, throwsCode } from '../helpers/coordination.js';

const parts = (n: number, stripes = 16) =>
  Array.from({ length: n }, (_, i) => ({ stripeStart: i * stripes, stripeEnd: (i + 1) * stripes, instructions: { op: 'copy', i } }));

function pair(t: { teardown(fn: () => void): void }) {
  const dir = tempStateDir(t);
  const a = Coordinator.open(dir, { address: '127.0.0.1:10809' });
  const b = Coordinator.open(dir);
  t.teardown(() => { a.close(); b.close(); });
  return { dir, a, b };
}

t.test('a task is created with its data set and READY partitions', async (t) => {
  const { a } = pair(t);
  const task = a.createTask({ kind: 'rebuild', arrayName: 'md0', dataset: { member: 2 }, partitions: parts(4), maxAttempts: 2 });
  t.match(task, { kind: 'rebuild', arrayName: 'md0', dataset: { member: 2 }, initiator: a.id, state: 'RUNNING', partitionsTotal: 4, partitionsDone: 0, maxAttempts: 2 });
  const ps = a.tasks.partitions(task.id);
  t.same(ps.map((p) => [p.idx, p.state, p.stripeStart, p.stripeEnd]), [[0, 'READY', 0, 16], [1, 'READY', 16, 32], [2, 'READY', 32, 48], [3, 'READY', 48, 64]]);
  t.same(ps[3].instructions, { op: 'copy', i: 3 });
  throwsCode(t, () => a.createTask({ kind: 'x', partitions: [] }), 'EINVAL');
  throwsCode(t, () => a.createTask({ kind: 'x', partitions: [{ stripeStart: 5, stripeEnd: 4 }] }), 'EINVAL');
  throwsCode(t, () => a.createTask({ kind: 'x', partitions: parts(1), maxAttempts: 0 }), 'EINVAL');
  throwsCode(t, () => a.tasks.require(99), 'ENOENT', /nbdraid tasks/);
});

t.test('claim, checkpoint, complete: lowest index first, owner only', async (t) => {
  const { a, b } = pair(t);
  const task = a.createTask({ kind: 'scrub', partitions: parts(3) });
  const c0 = a.claim();
  const c1 = b.claim();
  t.equal(c0?.partition.idx, 0);
  t.equal(c1?.partition.idx, 1);
  t.equal(c0?.partition.state, 'IN_PROGRESS');
  t.equal(c0?.partition.owner, a.id);
  t.equal(c0?.task.id, task.id);
  const p0 = { taskId: task.id, idx: 0 };
  const p1 = { taskId: task.id, idx: 1 };
  throwsCode(t, () => b.complete(p0), 'EPERM', /owned by controller/);
  throwsCode(t, () => b.checkpoint(p0, { at: 1 }), 'EPERM');
  throwsCode(t, () => b.fail(p0, 'x'), 'EPERM');
  throwsCode(t, () => b.release(p0), 'EPERM');
  throwsCode(t, () => a.work.claimIndex(task.id, 0), 'EBUSY', /IN_PROGRESS/);
  t.equal(a.checkpoint(p0, { stripe: 5 }, 1000), 'RUNNING');
  t.equal(a.checkpoint(p0, { stripe: 9 }, 500), 'RUNNING');
  t.same(a.tasks.partition(task.id, 0)?.checkpoint, { stripe: 9 });
  t.equal(a.tasks.partition(task.id, 0)?.bytes, 1500);
  t.equal(a.complete(p0, 100), false);
  throwsCode(t, () => a.complete(p0), 'ESTALE', /COMPLETE/);
  throwsCode(t, () => a.checkpoint(p0, {}), 'ESTALE');
  throwsCode(t, () => a.work.claimIndex(task.id, 0), 'EBUSY', /COMPLETE/);
  throwsCode(t, () => a.complete({ taskId: task.id, idx: 7 }), 'ENOENT');
  t.equal(a.tasks.partition(task.id, 0)?.bytes, 1600);
  t.equal(b.complete(p1), false);
  const c2 = a.claim();
  t.equal(c2?.partition.idx, 2);
  t.equal(b.claim(), undefined, 'nothing READY is left');
  const progress = a.tasks.progress(task.id);
  t.same(progress.counts, { READY: 0, IN_PROGRESS: 1, COMPLETE: 2, FAILED: 0 });
  t.same(progress.inProgress.map((p) => [p.idx, p.owner]), [[2, a.id]]);
  t.equal(progress.stripesDone, 32);
  t.equal(a.complete({ taskId: task.id, idx: 2 }), true, 'the last completion says so');
  t.equal(a.tasks.get(task.id)?.partitionsDone, 3);
});

t.test('claim filters and named claims', async (t) => {
  const { a } = pair(t);
  const t1 = a.createTask({ kind: 'scrub', arrayName: 'md0', partitions: parts(2) });
  const t2 = a.createTask({ kind: 'rebuild', arrayName: 'md1', partitions: parts(2) });
  t.equal(a.claim({ kinds: ['rebuild'] })?.task.id, t2.id);
  t.equal(a.claim({ arrayName: 'md0' })?.task.id, t1.id);
  t.equal(a.claim({ taskId: t2.id })?.partition.idx, 1);
  t.equal(a.work.claimIndex(t1.id, 1).partition.idx, 1);
  throwsCode(t, () => a.work.claimIndex(t1.id, 9), 'ENOENT');
  throwsCode(t, () => a.work.claimIndex(77, 0), 'ENOENT');
});

t.test('a dependency policy orders claims', async (t) => {
  const { a, b } = pair(t);
  a.setPolicy('migrate', afterPrevious);
  b.setPolicy('migrate', afterPrevious);
  const task = a.createTask({ kind: 'migrate', partitions: parts(3) });
  t.equal(a.claim()?.partition.idx, 0);
  t.equal(b.claim(), undefined, 'partition 1 waits for partition 0');
  a.complete({ taskId: task.id, idx: 0 });
  t.equal(b.claim()?.partition.idx, 1);
  t.equal(a.claim(), undefined);
  const odd = whenEligible((p) => p.idx % 2 === 1);
  a.setPolicy('odd', odd);
  const t2 = a.createTask({ kind: 'odd', partitions: parts(40) });
  const got = [a.claim({ taskId: t2.id }), a.claim({ taskId: t2.id })].map((c) => c?.partition.idx);
  t.same(got, [1, 3], 'the predicate sees READY partitions past the first page');
});

t.test('failed attempts: READY with checkpoint, then FAILED task with the reason', async (t) => {
  const { a, b } = pair(t);
  const task = a.createTask({ kind: 'check', partitions: parts(2), maxAttempts: 2 });
  const p = { taskId: task.id, idx: 0 };
  a.claim();
  a.checkpoint(p, { stripe: 3 });
  t.equal(a.fail(p, 'EIO on member 1'), 'READY');
  const again = a.tasks.partition(task.id, 0);
  t.match(again, { state: 'READY', owner: null, attempts: 1, error: 'EIO on member 1', checkpoint: { stripe: 3 } });
  t.same(b.claim()?.partition.checkpoint, { stripe: 3 }, 'the next owner resumes from the checkpoint');
  b.claim();
  t.equal(b.fail(p, 'EIO again'), 'FAILED');
  const failed = a.tasks.require(task.id);
  t.equal(failed.state, 'FAILED');
  t.match(failed.reason, /partition 0 failed 2 times: EIO again/);
  t.equal(a.tasks.partition(task.id, 0)?.state, 'FAILED');
  throwsCode(t, () => b.complete({ taskId: task.id, idx: 1 }), 'ECANCELED', /FAILED/);
  b.release({ taskId: task.id, idx: 1 });
  t.equal(a.claim(), undefined, 'a FAILED task offers nothing');
  throwsCode(t, () => a.tasks.pause(task.id), 'EINVAL');
});

t.test('pause, resume, cancel', async (t) => {
  const { a, b } = pair(t);
  const cli = new TaskStore(openDatabase(a.stateDir));
  const task = a.createTask({ kind: 'rebuild', partitions: parts(3) });
  const p0 = { taskId: task.id, idx: 0 };
  a.claim();
  t.equal(cli.pause(task.id).state, 'PAUSED');
  throwsCode(t, () => cli.pause(task.id), 'EINVAL', /only a RUNNING task/);
  t.equal(b.claim(), undefined, 'no claims while paused');
  throwsCode(t, () => b.work.claimIndex(task.id, 1), 'EBUSY', /PAUSED/);
  t.equal(a.checkpoint(p0, { s: 1 }), 'PAUSED', 'the owner learns at its checkpoint');
  a.release(p0);
  t.match(a.tasks.partition(task.id, 0), { state: 'READY', owner: null, attempts: 0, checkpoint: { s: 1 } });
  throwsCode(t, () => a.release(p0), 'ESTALE');
  t.equal(cli.resume(task.id).state, 'RUNNING');
  throwsCode(t, () => cli.resume(task.id), 'EINVAL');
  t.equal(b.claim()?.partition.idx, 0);
  t.equal(cli.cancel(task.id).state, 'CANCELLED');
  throwsCode(t, () => b.complete(p0), 'ECANCELED', /CANCELLED/);
  throwsCode(t, () => b.checkpoint(p0, {}), 'ECANCELED');
  throwsCode(t, () => cli.cancel(task.id), 'EINVAL');
  throwsCode(t, () => cli.resume(task.id), 'EINVAL');
  t.equal(a.claim(), undefined);
  const kinds = new EventLog(openDatabase(a.stateDir)).list({ taskId: task.id }).map((e) => `${e.kind}@${e.actor}`);
  t.same(kinds, [`task.created@controller ${a.id}`, `partition.claimed@controller ${a.id}`, 'task.paused@cli',
    `partition.released@controller ${a.id}`, 'task.resumed@cli', `partition.claimed@controller ${b.id}`, 'task.cancelled@cli']);
});

t.test('completion runs once, on the initiator, after the last partition', async (t) => {
  const { a, b } = pair(t);
  const ran: string[] = [];
  a.onCompletion('scrub', (task) => { ran.push(`a:${task.id}`); return { mismatches: 0 }; });
  b.onCompletion('scrub', (task) => { ran.push(`b:${task.id}`); return { mismatches: 0 }; });
  const task = a.createTask({ kind: 'scrub', partitions: parts(2) });
  b.claim();
  b.claim();
  b.complete({ taskId: task.id, idx: 0 });
  b.complete({ taskId: task.id, idx: 1 });
  const done = await b.waitForTask(task.id);
  t.equal(done.state, 'DONE');
  t.same(done.result, { mismatches: 0 });
  t.same(ran, [`a:${task.id}`], 'the initiator ran it, once');
  const kinds = a.events.list({ taskId: task.id }).map((e) => e.kind).slice(-3);
  t.same(kinds, ['task.partitions-complete', 'task.completing', 'task.done']);
});

t.test('a failing completion action fails the task with the reason', async (t) => {
  const { a } = pair(t);
  a.onCompletion('resync', () => { throw new Error('superblock write failed'); });
  const task = a.createTask({ kind: 'resync', partitions: parts(1) });
  a.claim();
  a.complete({ taskId: task.id, idx: 0 });
  const end = await a.waitForTask(task.id);
  t.equal(end.state, 'FAILED');
  t.match(end.reason, /completion action failed: superblock write failed/);
});

t.test('a task without initiator is adopted by a live controller', async (t) => {
  const { a } = pair(t);
  const ran: number[] = [];
  a.onCompletion('check', (task) => { ran.push(task.id); });
  const cli = new TaskStore(openDatabase(a.stateDir));
  const task = cli.create({ kind: 'check', partitions: parts(1), initiator: null });
  a.claim();
  a.complete({ taskId: task.id, idx: 0 });
  t.equal((await a.waitForTask(task.id)).state, 'DONE');
  t.equal(a.tasks.require(task.id).initiator, a.id);
  t.same(ran, [task.id]);
});

t.test('a stopped controller gives its partitions back and its tasks to the next live one', async (t) => {
  const dir = tempStateDir(t);
  const a = Coordinator.open(dir);
  const b = Coordinator.open(dir);
  t.teardown(() => b.close());
  const ran: string[] = [];
  b.onCompletion('scrub', () => { ran.push('b'); });
  const task = a.createTask({ kind: 'scrub', partitions: parts(2) });
  a.claim();
  a.checkpoint({ taskId: task.id, idx: 0 }, { s: 7 });
  await a.close();
  t.equal(b.controllers.require(a.id).state, 'stopped');
  throwsCode(t, () => b.controllers.stop(a.id), 'EPERM');
  const c = b.claim();
  t.match(c?.partition, { idx: 0, checkpoint: { s: 7 } });
  b.complete({ taskId: task.id, idx: 0 });
  b.claim();
  b.complete({ taskId: task.id, idx: 1 });
  t.equal((await b.waitForTask(task.id)).state, 'DONE');
  t.same(ran, ['b']);
});

t.test('a controller that is not live may not work', async (t) => {
  const dir = tempStateDir(t);
  const a = Coordinator.open(dir);
  const task = a.createTask({ kind: 'scrub', partitions: parts(1) });
  await a.close();
  const b = Coordinator.open(dir);
  t.teardown(() => b.close());
  t.equal(b.tasks.require(task.id).state, 'RUNNING');
  // Work under the id of a stopped controller is refused.
  const { PartitionWork } = await import('../../lib/coordination/partitions.js');
  const stale = new PartitionWork(b.db, a.id);
  throwsCode(t, () => stale.claim(), 'ESTALE', /register again/);
});

t.test('createUnlessActive: one task of a kind per array at a time, from any number of controllers', async (t) => {
  const dir = tempStateDir(t);
  const a = Coordinator.open(dir);
  const b = Coordinator.open(dir);
  t.teardown(async () => { await a.close(); await b.close(); });
  for (const c of [a, b]) c.onCompletion('resync', () => 'done');
  const task = { kind: 'resync', arrayName: 'md0', partitions: parts(1) };
  const made = await Promise.all([a.async.createTaskUnlessActive(task), b.async.createTaskUnlessActive(task), a.async.createTaskUnlessActive(task)]);
  t.equal(made.filter((x) => x !== undefined).length, 1, 'three concurrent starts create one task');
  t.ok(await a.async.createTaskUnlessActive({ ...task, arrayName: 'md1' }), 'another array gets its own');
  t.ok(await b.async.createTaskUnlessActive({ ...task, kind: 'check' }), 'another kind on the same array too');
  const first = made.find((x) => x !== undefined)!;
  const c = a.claim({ arrayName: 'md0' });
  t.equal(c?.task.id, first.id);
  a.complete({ taskId: first.id, idx: 0 });
  await a.waitForTask(first.id);
  t.ok(await b.async.createTaskUnlessActive(task), 'once it finished, a new one can start');
});

t.test('a task whose creation is answered as its controller closes is left to a live controller', async (t) => {
  const dir = tempStateDir(t);
  const a = Coordinator.open(dir);
  const b = Coordinator.open(dir);
  t.teardown(() => b.close());
  let ran = 0;
  b.onCompletion('resync', () => { ran++; });
  // Asked, then close at once: the thread answers the creation before a is recorded stopped.
  const made = a.async.createTaskUnlessActive({ kind: 'resync', arrayName: 'md0', dataset: { regions: [0] }, partitions: parts(1) });
  await a.close();
  const task = await made;
  t.ok(task, 'the task was created');
  t.equal(b.controllers.require(a.id).state, 'stopped');
  t.equal(b.tasks.require(task!.id).initiator, null, 'its stopped initiator gave it up');
  const c = b.claim();
  b.complete({ taskId: task!.id, idx: c!.partition.idx });
  t.equal((await b.waitForTask(task!.id)).state, 'DONE', 'the live controller adopted it and ran its completion');
  t.equal(ran, 1);
});

t.test('a task created for a controller that is no longer live gets no initiator', async (t) => {
  const dir = tempStateDir(t);
  const a = Coordinator.open(dir);
  const id = a.id;
  await a.close();
  const cli = new TaskStore(openDatabase(dir));
  t.equal(cli.create({ kind: 'scrub', initiator: id, partitions: parts(1) }).initiator, null);
});
