// The coordination operations (AsyncWorkOps) written once as scenarios and run against both
// backends: the SQLite coordination thread (DbThread) and PostgreSQL (PgBackend / pgOps) on a
// throw-away server. Claims never collide, the owner's transitions and their refusals, attempts,
// release, lease take / want / hand-over, the write-intent bit, reaping a dead controller, epochs;
// and the record operations: the array record and its member changes, spares, superblock
// bookkeeping, pending resyncs, tasks created once, completions, the events journal.
import t, { type Test } from 'tap';
import { unlinkSync } from 'node:fs';
import { ArrayRegistry, type NewArray } from '../../lib/coordination/arrays.js';
import { ControllerRegistry } from '../../lib/coordination/controllers.js';
import { openDatabase } from '../../lib/coordination/db.js';
import { DbThread, type AsyncDbOps } from '../../lib/coordination/db-thread.js';
import { PgBackend, PgChangeListener } from '../../lib/coordination/pg/index.js';
import { toPartition, toTask, type PartitionRecord, type PartitionRow, type TaskRecord, type TaskRow } from '../../lib/coordination/records.js';
import { TaskStore, type NewTask } from '../../lib/coordination/tasks.js';
import { tempStateDir } from '../helpers/coordination.js';
import { waitUntil, withDeadline } from '../helpers/deadline.js';
import { postgresBin, startPostgres, type Postgres } from '../helpers/postgres.js';

interface Ctl { id: number; ops: AsyncDbOps }

interface Backend {
  name: string;
  controller(): Promise<Ctl>;
  /** The controller ends without stopping: SQLite, its lock is gone; PostgreSQL, it heartbeats no more. */
  kill(c: Ctl): Promise<void>;
  /** The controller stops cleanly (its row says stopped). */
  stop(c: Ctl): Promise<void>;
  createArray(rec: NewArray): Promise<unknown>;
  createTask(task: NewTask): Promise<TaskRecord>;
  task(id: number): Promise<TaskRecord>;
  partition(taskId: number, idx: number): Promise<PartitionRecord>;
  /** Lease epochs come from one sequence, so they grow across regions too. */
  globalEpochs: boolean;
}

/** PostgreSQL's bound T in these tests: short, since the dead scenario waits it out. */
const DEAD_AFTER_MS = 300;
const WAIT_MS = 10_000;

function sqlite(t: Test): Backend {
  const dir = tempStateDir(t);
  const db = openDatabase(dir);
  const registry = new ControllerRegistry(db, dir);
  const tasks = new TaskStore(db);
  const arrays = new ArrayRegistry(db);
  const threads: DbThread[] = [];
  const lockFiles = new Map<number, string>();
  t.teardown(async () => {
    await Promise.all(threads.map((th) => th.close()));
    for (const id of lockFiles.keys()) registry.stop(id);
    db.close();
  });
  return {
    name: 'sqlite',
    globalEpochs: false,
    async controller() {
      const rec = registry.register();
      lockFiles.set(rec.id, rec.lockFile);
      const th = new DbThread(dir, rec.id);
      threads.push(th);
      return { id: rec.id, ops: th.ops };
    },
    async kill(c) {
      // A missing lock file reads as a process that ended (liveness.ts): the row stays 'live'.
      unlinkSync(lockFiles.get(c.id)!);
    },
    async stop(c) {
      registry.stop(c.id);
      lockFiles.delete(c.id);
    },
    createArray: async (rec) => arrays.create(rec),
    createTask: async (task) => tasks.create(task),
    task: async (id) => tasks.require(id),
    partition: async (taskId, idx) => tasks.partition(taskId, idx)!,
  };
}

let databases = 0;
async function postgres(t: Test, server: Postgres): Promise<Backend> {
  const name = `scenario${++databases}`;
  await server.psql(`CREATE DATABASE ${name}`);
  const backend = await PgBackend.open(server.uri(name), { deadAfterMs: DEAD_AFTER_MS });
  t.teardown(() => backend.close());
  const one = async <R>(sql: string, args: unknown[]): Promise<R> => (await backend.pool.query(sql, args)).rows[0] as R;
  return {
    name: 'postgres',
    globalEpochs: true,
    async controller() {
      const { id } = await backend.register();
      return { id, ops: backend.ops(id) };
    },
    async kill() { /* it simply heartbeats no more */ },
    async stop(c) { await backend.stop(c.id); },
    createArray: (rec) => backend.createArray(rec),
    createTask: (task) => backend.createTask(task),
    task: async (id) => toTask(await one<TaskRow>('SELECT * FROM tasks WHERE id = $1', [id])),
    partition: async (taskId, idx) => toPartition(await one<PartitionRow>('SELECT * FROM partitions WHERE task_id = $1 AND idx = $2', [taskId, idx])),
  };
}

const parts = (n: number) => Array.from({ length: n }, (_, i) => ({ stripeStart: i * 10, stripeEnd: i * 10 + 10 }));
const codeOf = async (p: Promise<unknown>): Promise<string | undefined> => p.then(() => undefined, (e: { code?: string }) => e.code ?? 'none');

type Scenario = (t: Test, b: Backend) => Promise<void>;

/** Three active members in slots 0-2 and one spare. */
const newArray = (name: string): NewArray => ({
  name, uuid: `uuid-${name}`, level: 5, layout: 'left-symmetric', chunk: 512, raidDisks: 3, dataOffset: 2048, memberSize: 1 << 20,
  members: [
    ...[0, 1, 2].map((i) => ({ slot: i, path: `/dev/m${i}`, state: 'active' as const, deviceUuid: `dev-${i}`, devNumber: i })),
    { slot: null, path: '/dev/s0', state: 'spare' as const, deviceUuid: 'dev-s0' },
  ],
});
const member = async (x: Ctl, array: string, path: string) => (await x.ops.arrayGet(array))!.members.find((m) => m.path === path)!;

const scenarios: Record<string, Scenario> = {
  'two controllers claiming at once never get the same partition': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    const task = await b.createTask({ kind: 'k', initiator: null, partitions: parts(30) });
    const drain = async (x: Ctl): Promise<number[]> => {
      const got: number[] = [];
      for (let i = 0; i < 100; i++) {
        const cl = await x.ops.claim({});
        if (!cl) break;
        t.equal(cl.partition.owner, x.id);
        got.push(cl.partition.idx);
        await x.ops.complete({ taskId: task.id, idx: cl.partition.idx }, 0);
      }
      return got;
    };
    const [ga, gc] = await Promise.all([drain(a), drain(c)]);
    t.same(ga.filter((i) => gc.includes(i)), [], 'no partition was claimed by both');
    t.same([...ga, ...gc].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i), 'every partition was claimed exactly once');
    t.equal((await b.task(task.id)).partitionsDone, 30);
  },

  'checkpoint keeps progress; complete says which was the last partition': async (t, b) => {
    const a = await b.controller();
    const task = await b.createTask({ kind: 'k', initiator: a.id, partitions: parts(2) });
    const first = (await a.ops.claim({ taskId: task.id }))!;
    t.equal(first.partition.idx, 0, 'the lowest index first');
    t.equal(first.partition.state, 'IN_PROGRESS');
    t.equal(await a.ops.checkpoint({ taskId: task.id, idx: 0 }, { at: 5 }, 100), 'RUNNING');
    const p = await b.partition(task.id, 0);
    t.same([p.checkpoint, p.bytes], [{ at: 5 }, 100], 'the checkpoint and bytes are recorded');
    t.equal(await a.ops.complete({ taskId: task.id, idx: 0 }, 20), false, 'not the last');
    t.equal((await b.partition(task.id, 0)).bytes, 120);
    t.equal(await codeOf(a.ops.complete({ taskId: task.id, idx: 0 }, 0)), 'ESTALE', 'a COMPLETE partition cannot complete again');
    const second = (await a.ops.claim({ taskId: task.id }))!;
    t.equal(second.partition.idx, 1);
    t.equal(await a.ops.complete({ taskId: task.id, idx: 1 }, 0), true, 'the last one');
    t.equal(await a.ops.claim({}), undefined, 'nothing left to claim');
    t.equal((await b.partition(task.id, 1)).state, 'COMPLETE');
  },

  'a failed attempt returns the partition READY; the last allowed fails it and its task': async (t, b) => {
    const a = await b.controller();
    const task = await b.createTask({ kind: 'k', initiator: a.id, partitions: parts(1), maxAttempts: 2 });
    await a.ops.claim({});
    t.equal(await a.ops.fail({ taskId: task.id, idx: 0 }, 'member EIO'), 'READY');
    const p = await b.partition(task.id, 0);
    t.same([p.state, p.attempts, p.error, p.owner], ['READY', 1, 'member EIO', null]);
    t.equal((await a.ops.claim({}))?.partition.idx, 0, 'claimed again');
    t.equal(await a.ops.fail({ taskId: task.id, idx: 0 }, 'again'), 'FAILED');
    t.same([(await b.partition(task.id, 0)).attempts, (await b.task(task.id)).state], [2, 'FAILED']);
    t.equal(await a.ops.claim({}), undefined, 'a FAILED task offers nothing');
  },

  'release gives the partition back with its checkpoint; only the owner may act on it': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    const task = await b.createTask({ kind: 'k', initiator: a.id, partitions: parts(1) });
    await a.ops.claim({});
    const ref = { taskId: task.id, idx: 0 };
    t.equal(await codeOf(c.ops.complete(ref, 0)), 'EPERM', 'another controller cannot complete it');
    t.equal(await c.ops.claim({}), undefined, 'nor claim it');
    await a.ops.checkpoint(ref, { stripe: 7 }, 0);
    await a.ops.release(ref);
    const p = await b.partition(task.id, 0);
    t.same([p.state, p.attempts, p.checkpoint], ['READY', 0, { stripe: 7 }], 'READY, no attempt counted, checkpoint kept');
    const again = await c.ops.claim({});
    t.same([again?.partition.owner, again?.partition.checkpoint], [c.id, { stripe: 7 }], 'the next owner resumes from it');
  },

  'a lease: one takes it, the other waits, hand-over through poll and giveBack': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    const ta = await a.ops.leaseTake('md0', 4);
    t.equal(ta.granted, true);
    const tc = await c.ops.leaseTake('md0', 4);
    t.same(tc, { granted: false, holder: a.id }, 'the second is told who holds it');
    t.same((await c.ops.leasePoll('md0', [4], true)).granted, [], 'a live holder is not reaped: still waiting');
    t.same((await a.ops.leasePoll('md0', [], false)).wanted.map((w) => w.region), [4], 'the holder sees it wanted');
    await a.ops.leaseGiveBack('md0', 4);
    t.same(await a.ops.leaseTake('md0', 4), { granted: false, holder: c.id }, 'given straight to the waiter, not freed');
    t.same((await c.ops.leasePoll('md0', [4], false)).granted.map((g) => g.region), [4], 'the waiter has it now');
    t.same((await a.ops.leasePoll('md0', [], false)).wanted, [], 'nothing more wanted from the old holder');
    const tc2 = await c.ops.leaseTake('md0', 4);
    t.ok(tc2.granted && ta.granted && tc2.epoch > ta.epoch, 'the hand-over is a grant with a greater epoch');
    t.same(await a.ops.leaseTake('md0', 4), { granted: false, holder: c.id });
    await c.ops.leaseCloseAll('md0', []);
    t.same((await a.ops.leasePoll('md0', [4], false)).granted.map((g) => g.region), [4], 'closeAll handed it to the waiter');
  },

  'the write-intent bit travels with the lease until cleared': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    await a.ops.leaseTake('md0', 3);
    await a.ops.markDirty('md0', [3]);
    await c.ops.leaseTake('md0', 3);
    await a.ops.leaseGiveBack('md0', 3);
    t.same((await c.ops.leasePoll('md0', [3], false)).granted.map((g) => [g.region, g.dirty]), [[3, true]], 'handed over dirty');
    await c.ops.markClean('md0', [3]);
    await c.ops.leaseGiveBack('md0', 3);
    const again = await a.ops.leaseTake('md0', 3);
    t.same(again.granted && again.dirty, false, 'clean after markClean');
    await a.ops.markDirty('md0', [3]);
    await a.ops.leaseGiveBack('md0', 3);
    const kept = await c.ops.leaseTake('md0', 3);
    t.same(kept.granted && kept.dirty, true, 'a freed dirty lease keeps its bit for the next holder');
  },

  'a dead controller is reaped: its partitions READY, its dirty regions queued for resync': async (t, b) => {
    const [a, dead] = [await b.controller(), await b.controller()];
    const task = await b.createTask({ kind: 'k', initiator: dead.id, partitions: parts(3) });
    t.equal((await dead.ops.claim({}))?.partition.idx, 0);
    await dead.ops.leaseTake('md0', 5);
    await dead.ops.markDirty('md0', [5]);
    t.same(await a.ops.reapDead(a.id), [], 'nobody is reaped while all live');
    await b.kill(dead);
    const reaped = await waitUntil(async () => {
      await a.ops.heartbeat(a.id);
      const r = await a.ops.reapDead(a.id);
      return r.length > 0 ? r : undefined;
    }, WAIT_MS, 'the dead controller is reaped', 25);
    t.same(reaped, [{
      controller: dead.id, partitions: [{ taskId: task.id, idx: 0 }], leasesFreed: 1,
      dirtyRegions: [{ arrayName: 'md0', region: 5 }], tasksAdopted: [task.id],
    }]);
    t.same([(await b.partition(task.id, 0)).state, (await b.partition(task.id, 0)).owner], ['READY', null]);
    t.equal((await b.task(task.id)).initiator, a.id, 'the reaper adopted its task');
    t.equal((await a.ops.claim({}))?.partition.idx, 0, 'its partition is claimed again');
    t.equal(await codeOf(dead.ops.claim({})), 'ESTALE', 'the reaped controller works no more');
    t.equal((await a.ops.leaseTake('md0', 5)).granted, true, 'its lease is free');
  },

  'the epoch grows on every grant': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    const epochs: number[] = [];
    for (let i = 0; i < 6; i++) {
      const x = i % 2 === 0 ? a : c;
      const out = await x.ops.leaseTake('md0', 9);
      if (out.granted) epochs.push(out.epoch);
      await x.ops.markDirty('md0', [9]); // a dirty lease keeps its row, and so its epoch history
      await x.ops.leaseGiveBack('md0', 9);
    }
    t.equal(epochs.length, 6, 'every take was granted');
    t.ok(epochs.every((e, i) => i === 0 || e > epochs[i - 1]), `strictly increasing: ${epochs.join(' ')}`);
    if (b.globalEpochs) {
      const r1 = await a.ops.leaseTake('md1', 1);
      const r2 = await c.ops.leaseTake('md2', 1);
      t.ok(r1.granted && r2.granted && r2.epoch > r1.epoch && r1.epoch > epochs[5], 'and across regions and arrays');
    }
  },
};

const recordScenarios: Record<string, Scenario> = {
  'arrayGet: nothing for a missing array, the record for a present one; a second create is EEXIST': async (t, b) => {
    const a = await b.controller();
    t.equal(await a.ops.arrayGet('md0'), undefined, 'no such array yet');
    t.equal(await codeOf(a.ops.superblockSnapshot('md0')), 'ENOENT', 'a snapshot of a missing array');
    t.equal(await codeOf(a.ops.changeMember('md0', { kind: 'failed', slot: 0, reason: 'x' })), 'ENOENT', 'a change to a missing array');
    await b.createArray(newArray('md0'));
    const rec = (await a.ops.arrayGet('md0'))!;
    t.same([rec.name, rec.uuid, rec.level, rec.raidDisks, rec.dataOffset, rec.memberSize, rec.revision], ['md0', 'uuid-md0', 5, 3, 2048, 1 << 20, 1]);
    t.same(rec.members, newArray('md0').members, 'the members as created');
    t.same([rec.throttle, rec.md], [{ minMBps: 50, maxMBps: 2000, inflight: 8 }, {}], 'default throttle, empty md identity');
    t.equal(await codeOf(b.createArray(newArray('md0'))), 'EEXIST');
  },

  'changeMember applies once, is idempotent, and a change the record no longer allows is ESTALE': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    await b.createArray(newArray('md0'));
    await a.ops.changeMember('md0', { kind: 'failed', slot: 1, reason: 'EIO' });
    t.same([(await member(a, 'md0', '/dev/m1')).state, (await a.ops.arrayGet('md0'))!.revision], ['faulty', 2], 'applied, revision bumped');
    await c.ops.changeMember('md0', { kind: 'failed', slot: 1, reason: 'EIO again' });
    t.equal((await a.ops.arrayGet('md0'))!.revision, 2, 'the same change again costs no revision');
    t.equal(await codeOf(c.ops.changeMember('md0', { kind: 'rebuilt', slot: 1 })), 'ESTALE', 'a faulty member cannot finish a rebuild');
    t.equal(await codeOf(a.ops.changeMember('md0', { kind: 'recovered', slot: 1, sectors: 8 })), 'ESTALE', 'nor record recovery');
    t.same([(await member(a, 'md0', '/dev/m1')).state, (await a.ops.arrayGet('md0'))!.revision], ['faulty', 2], 'refusals changed nothing');
    const updates = await a.ops.events({ arrayName: 'md0', kindPrefix: 'array.updated' });
    t.same(updates.map((e) => Object.keys(e.detail as object)), [['members']], 'one array.updated event, naming the members');
  },

  'two controllers calling assignSpare at once: exactly one gets the spare': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    // Several arrays raced in turn, over connections already open, so the askers overlap.
    const names = Array.from({ length: 8 }, (_, i) => `md${7 - i}`);
    for (const name of names) await b.createArray({ ...newArray(name), uuid: `uuid-${name}` });
    await Promise.all(names.map((name) => a.ops.changeMember(name, { kind: 'failed', slot: 1, reason: 'EIO' })));
    for (const name of names) {
      const got = await Promise.all([a.ops.assignSpare(name, 1), c.ops.assignSpare(name, 1)]);
      t.same(got.filter((x) => x !== undefined), [{ path: '/dev/s0', deviceUuid: 'dev-s0', devNumber: 3 }], `${name}: one got it, with the next device number`);
      t.equal(got.filter((x) => x === undefined).length, 1, `${name}: the other got nothing`);
    }
    t.same((await member(a, 'md0', '/dev/s0')), { slot: 1, path: '/dev/s0', state: 'rebuilding', deviceUuid: 'dev-s0', devNumber: 3, recoveryOffset: 0 });
    t.same([(await member(a, 'md0', '/dev/m1')).state, (await a.ops.arrayGet('md0'))!.revision], ['removed', 3], 'the failed member removed, one update');
    await c.ops.changeMember('md0', { kind: 'rebuilding', slot: 1 });
    await c.ops.changeMember('md0', { kind: 'recovered', slot: 1, sectors: 100 });
    await a.ops.changeMember('md0', { kind: 'recovered', slot: 1, sectors: 40 });
    t.equal((await member(a, 'md0', '/dev/s0')).recoveryOffset, 100, 'recovery never goes back');
    await a.ops.changeMember('md0', { kind: 'rebuilt', slot: 1 });
    await c.ops.changeMember('md0', { kind: 'rebuilt', slot: 1 });
    t.same([(await member(a, 'md0', '/dev/s0')).state, (await a.ops.arrayGet('md0'))!.revision], ['active', 5], 'rebuilt once');
    t.equal(await c.ops.assignSpare('md0', 2), undefined, 'no spare left');
  },

  'createTaskUnlessActive from three controllers at once creates one': async (t, b) => {
    const xs = [await b.controller(), await b.controller(), await b.controller()];
    const duty = (x: Ctl, arrayName = 'md0'): NewTask => ({ kind: 'resync', arrayName, initiator: x.id, partitions: parts(1) });
    // Several arrays raced in turn, over connections already open, so the creators overlap.
    for (let i = 1; i <= 6; i++) {
      const made = await Promise.all(xs.map((x) => x.ops.createTaskUnlessActive(duty(x, `md${i}`))));
      t.equal(made.filter((m) => m !== undefined).length, 1, `md${i}: exactly one created it`);
    }
    const made = await Promise.all(xs.map((x) => x.ops.createTaskUnlessActive(duty(x))));
    const mine = made.filter((m) => m !== undefined);
    t.equal(mine.length, 1, 'exactly one created it');
    t.same((await xs[0].ops.tasks('md0', true)).map((k) => k.id), [mine[0]!.id], 'and only that one is active');
    t.equal(await xs[1].ops.createTaskUnlessActive(duty(xs[1])), undefined, 'not again while active');
    t.ok(await xs[1].ops.createTaskUnlessActive(duty(xs[1], 'md9')), 'the same duty on another array is created');
    const owner = xs.find((x) => x.id === mine[0]!.initiator)!;
    await owner.ops.claim({ taskId: mine[0]!.id });
    await owner.ops.complete({ taskId: mine[0]!.id, idx: 0 }, 0);
    t.equal(await owner.ops.completionBegin(mine[0]!), true);
    await owner.ops.completionFinish(mine[0]!, null, null);
    t.ok(await xs[2].ops.createTaskUnlessActive(duty(xs[2])), 'created again once the first is done');
    t.equal(await codeOf(xs[2].ops.createTaskUnlessActive({ ...duty(xs[2], 'md10'), partitions: [] })), 'EINVAL', 'a task without partitions is refused');
  },

  'pendingResync: a dirty lease left unheld, and a dead controller\'s dirty lease once reaped': async (t, b) => {
    const [a, dead] = [await b.controller(), await b.controller()];
    await b.createArray(newArray('md0'));
    await a.ops.leaseTake('md0', 6);
    await a.ops.markDirty('md0', [6]);
    t.same(await a.ops.pendingResync('md0'), [], 'a held dirty lease is not pending');
    await a.ops.leaseGiveBack('md0', 6);
    t.same(await a.ops.pendingResync('md0'), [6], 'a dirty lease nobody holds is');
    await dead.ops.leaseTake('md0', 5);
    await dead.ops.markDirty('md0', [5]);
    t.equal((await a.ops.superblockSnapshot('md0')).unsynced, 2, 'two write-intent bits');
    await b.kill(dead);
    await waitUntil(async () => {
      await a.ops.heartbeat(a.id);
      return (await a.ops.reapDead(a.id)).length > 0;
    }, WAIT_MS, 'the dead controller is reaped', 25);
    t.same(await a.ops.pendingResync('md0'), [5, 6], 'its dirty region is pending now');
    t.equal((await a.ops.superblockSnapshot('md0')).unsynced, 2, 'a resync row and a write-intent bit');
    await a.ops.clearResync('md0', [5]);
    t.same(await a.ops.pendingResync('md0'), [6], 'cleared');
    t.same(await a.ops.pendingResync('md1'), [], 'another array has none');
  },

  'superblockSnapshot counts unsynced regions and reads back what was written': async (t, b) => {
    const a = await b.controller();
    await b.createArray(newArray('md0'));
    const first = await a.ops.superblockSnapshot('md0');
    t.same([first.rec.name, first.written, first.unsynced], ['md0', undefined, 0], 'nothing written, nothing unsynced');
    t.equal(await a.ops.writtenEvents('md0'), undefined);
    await a.ops.leaseTake('md0', 1);
    await a.ops.leaseTake('md0', 2);
    await a.ops.markDirty('md0', [1, 2]);
    t.equal((await a.ops.superblockSnapshot('md0')).unsynced, 2);
    await a.ops.markClean('md0', [1]);
    t.equal((await a.ops.superblockSnapshot('md0')).unsynced, 1, 'markClean counts no more');
    await a.ops.recordWritten('md0', 7, { clean: false });
    const w = (await a.ops.superblockSnapshot('md0')).written!;
    t.same([w.events, w.state, typeof w.writtenAt], [7, { clean: false }, 'number']);
    await a.ops.recordWritten('md0', 8, { clean: true });
    t.equal(await a.ops.writtenEvents('md0'), 8, 'the last write wins');
  },

  'completions: ready, begin and finish once; a second begin is false': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    const task = await b.createTask({ kind: 'k', arrayName: 'md0', initiator: a.id, partitions: parts(1) });
    t.same(await a.ops.completionsReady(), [], 'not ready while a partition is left');
    await a.ops.claim({});
    await a.ops.complete({ taskId: task.id, idx: 0 }, 0);
    t.same((await a.ops.completionsReady()).map((k) => k.id), [task.id], 'ready for its initiator');
    t.same(await c.ops.completionsReady(), [], 'not for another controller');
    t.equal(await c.ops.completionBegin(task), false, 'another controller cannot begin it');
    t.equal(await a.ops.completionBegin(task), true, 'the initiator begins');
    t.equal(await a.ops.completionBegin(task), false, 'once');
    t.same(await a.ops.completionsReady(), [], 'COMPLETING is not ready again');
    await a.ops.completionFinish(task, { ok: 1 }, null);
    await a.ops.completionFinish(task, { ok: 2 }, 'late');
    const done = await b.task(task.id);
    t.same([done.state, done.result, done.reason], ['DONE', { ok: 1 }, null], 'finished once');
    t.equal((await a.ops.events({ taskId: task.id, kindPrefix: 'task.' })).filter((e) => e.kind === 'task.done').length, 1);
  },

  'an orphan task is adopted only by a live controller': async (t, b) => {
    const [a, gone] = [await b.controller(), await b.controller()];
    await b.stop(gone);
    const task = await b.createTask({ kind: 'k', initiator: null, partitions: parts(1) });
    t.same(await gone.ops.completionsReady(), [], 'a stopped controller is offered nothing');
    t.equal((await b.task(task.id)).initiator, null, 'and adopts nothing');
    t.same(await a.ops.completionsReady(), [], 'adopted, but not yet ready');
    t.equal((await b.task(task.id)).initiator, a.id, 'the live controller adopted it');
    await a.ops.claim({});
    await a.ops.complete({ taskId: task.id, idx: 0 }, 0);
    t.same((await a.ops.completionsReady()).map((k) => k.id), [task.id]);
    const adopted = await a.ops.events({ taskId: task.id, kindPrefix: 'task.adopted' });
    t.same(adopted.map((e) => e.detail), [{ from: null, to: a.id }], 'adopted once, journalled');
  },

  'a task gets only a live initiator or heir; otherwise it waits for the next live controller': async (t, b) => {
    const [gone, dead] = [await b.controller(), await b.controller()];
    await b.stop(gone);
    const orphan = await b.createTask({ kind: 'k', initiator: gone.id, partitions: parts(1) });
    t.equal(orphan.initiator, null, 'a stopped initiator is not recorded');
    const held = await b.createTask({ kind: 'k', initiator: dead.id, partitions: parts(1) });
    t.equal(held.initiator, dead.id, 'a live one is');
    await b.kill(dead);
    await waitUntil(async () => (await gone.ops.reapDead(gone.id)).length > 0, WAIT_MS, 'the dead controller is reaped', 25);
    t.equal((await b.task(held.id)).initiator, null, 'a stopped reaper does not inherit its task');
  },

  'tasks, partitions, activeProgress and liveControllers': async (t, b) => {
    const [a, c] = [await b.controller(), await b.controller()];
    t.equal(await a.ops.liveControllers(), 2);
    const task = await a.ops.createTask({ kind: 'k', arrayName: 'md0', initiator: a.id, partitions: parts(3) });
    await b.createTask({ kind: 'k', arrayName: 'md1', initiator: a.id, partitions: parts(1) });
    t.same((await a.ops.tasks('md0', false)).map((k) => [k.id, k.initiator, k.state]), [[task.id, a.id, 'RUNNING']], 'md0\'s tasks only');
    await a.ops.claim({ taskId: task.id });
    await a.ops.complete({ taskId: task.id, idx: 0 }, 30);
    await c.ops.claim({ taskId: task.id });
    await c.ops.checkpoint({ taskId: task.id, idx: 1 }, { at: 15 }, 5);
    t.same((await a.ops.partitions(task.id)).map((p) => p.state), ['COMPLETE', 'IN_PROGRESS', 'READY']);
    const [pr] = await a.ops.activeProgress('md0');
    t.same([pr.task.id, pr.counts, pr.bytes, pr.stripesTotal, pr.stripesDone],
      [task.id, { READY: 1, IN_PROGRESS: 1, COMPLETE: 1, FAILED: 0 }, 35, 30, 10]);
    t.same(pr.inProgress, [{ idx: 1, owner: c.id, stripeStart: 10, stripeEnd: 20, bytes: 5, checkpoint: { at: 15 } }]);
    await b.stop(c);
    t.equal(await a.ops.liveControllers(), 1, 'a stopped controller is not live');
  },

  'events: listed by array, task, kind prefix, since an id, newest within the limit': async (t, b) => {
    const a = await b.controller();
    const t0 = await b.createTask({ kind: 'k', arrayName: 'md0', initiator: a.id, partitions: parts(2) });
    const t1 = await b.createTask({ kind: 'k', arrayName: 'md1', initiator: a.id, partitions: parts(1) });
    for (let i = 0; i < 3; i++) {
      const cl = (await a.ops.claim({}))!;
      await a.ops.complete({ taskId: cl.task.id, idx: cl.partition.idx }, 0);
    }
    const all = await a.ops.events({ limit: 1000 });
    t.ok(all.every((e, i) => i === 0 || e.id > all[i - 1].id), 'oldest first');
    const md0 = await a.ops.events({ arrayName: 'md0' });
    t.ok(md0.length > 0 && md0.every((e) => e.arrayName === 'md0'), 'by array');
    t.same(md0.map((e) => e.id), all.filter((e) => e.arrayName === 'md0').map((e) => e.id), 'all of md0\'s');
    const of1 = await a.ops.events({ taskId: t1.id });
    t.same(of1.map((e) => e.kind), ['task.created', 'partition.claimed', 'partition.completed', 'task.partitions-complete'], 'by task');
    const claims = await a.ops.events({ kindPrefix: 'partition.c' });
    t.same(claims.map((e) => e.kind).sort(), [...Array(3).fill('partition.claimed'), ...Array(3).fill('partition.completed')], 'by kind prefix');
    t.same((await a.ops.events({ limit: 2 })).map((e) => e.id), all.slice(-2).map((e) => e.id), 'the newest within the limit');
    t.same((await a.ops.events({ sinceId: all[all.length - 2].id })).map((e) => e.id), [all[all.length - 1].id], 'since an id');
    t.same((await a.ops.events({ taskId: t0.id, arrayName: 'md1' })), [], 'filters combine');
  },
};

const server = postgresBin() ? await startPostgres(t) : undefined;

for (const [name, scenario] of Object.entries({ ...scenarios, ...recordScenarios })) {
  t.test(`sqlite: ${name}`, (tt) => scenario(tt, sqlite(tt)));
  t.test(`postgres: ${name}`, { skip: !server && 'needs Debian\'s postgresql package' }, async (tt) => scenario(tt, await postgres(tt, server!)));
}

t.test('postgres: every committed transition is notified to listeners', { skip: !server && 'needs Debian\'s postgresql package' }, async (tt) => {
  const b = await postgres(tt, server!);
  const listener = await PgChangeListener.open(server!.uri(`scenario${databases}`));
  tt.teardown(() => listener.close());
  const a = await b.controller();
  let heard = 0;
  listener.subscribe(() => { heard++; });
  await b.createTask({ kind: 'k', initiator: null, partitions: parts(1) });
  await waitUntil(() => heard >= 1, WAIT_MS, 'a notification of the task created');
  const before = heard;
  await a.ops.claim({});
  await withDeadline(waitUntil(() => heard > before, WAIT_MS, 'a notification of the claim'), WAIT_MS * 2, 'the claim notification');
  tt.equal(listener.state, 'listening');
});
