// The coordination operations (AsyncWorkOps) written once as scenarios and run against both
// backends: the SQLite coordination thread (DbThread) and PostgreSQL (PgBackend / pgOps) on a
// throw-away server. Claims never collide, the owner's transitions and their refusals, attempts,
// release, lease take / want / hand-over, the write-intent bit, reaping a dead controller, epochs.
import t, { type Test } from 'tap';
import { unlinkSync } from 'node:fs';
import { ControllerRegistry } from '../../lib/coordination/controllers.js';
import { openDatabase } from '../../lib/coordination/db.js';
import { DbThread, type AsyncWorkOps } from '../../lib/coordination/db-thread.js';
import { PgBackend, PgChangeListener } from '../../lib/coordination/pg/index.js';
import { toPartition, toTask, type PartitionRecord, type PartitionRow, type TaskRecord, type TaskRow } from '../../lib/coordination/records.js';
import { TaskStore, type NewTask } from '../../lib/coordination/tasks.js';
import { tempStateDir } from '../helpers/coordination.js';
import { waitUntil, withDeadline } from '../helpers/deadline.js';
import { postgresBin, startPostgres, type Postgres } from '../helpers/postgres.js';

interface Ctl { id: number; ops: AsyncWorkOps }

interface Backend {
  name: string;
  controller(): Promise<Ctl>;
  /** The controller ends without stopping: SQLite, its lock is gone; PostgreSQL, it heartbeats no more. */
  kill(c: Ctl): Promise<void>;
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
    createTask: (task) => backend.createTask(task),
    task: async (id) => toTask(await one<TaskRow>('SELECT * FROM tasks WHERE id = $1', [id])),
    partition: async (taskId, idx) => toPartition(await one<PartitionRow>('SELECT * FROM partitions WHERE task_id = $1 AND idx = $2', [taskId, idx])),
  };
}

const parts = (n: number) => Array.from({ length: n }, (_, i) => ({ stripeStart: i * 10, stripeEnd: i * 10 + 10 }));
const codeOf = async (p: Promise<unknown>): Promise<string | undefined> => p.then(() => undefined, (e: { code?: string }) => e.code ?? 'none');

type Scenario = (t: Test, b: Backend) => Promise<void>;

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

const server = postgresBin() ? await startPostgres(t) : undefined;

for (const [name, scenario] of Object.entries(scenarios)) {
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
