// Region leases: the in-memory fast path, hand-over at a safe point, the write-intent bit, and,
// across real processes, mutual exclusion under contention and the release of a killed holder's leases.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator, type LocalCoordinator } from '../../lib/coordination/coordinator.js';
import { LeaseCache } from '../../lib/coordination/lease-cache.js';
import { LeaseStore } from '../../lib/coordination/leases.js';
import { leaseOpsOver, leaseSteps } from '../../lib/coordination/lease-ops.js';
import { tempStateDir, throwsCode } from '../helpers/coordination.js';
import { waitUntil, withDeadline } from '../helpers/deadline.js';
import { killHard, spawnNode } from '../helpers/processes.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'workers', 'lease-worker.js');

function pair(t: { teardown(fn: () => void): void }) {
  const dir = tempStateDir(t);
  const a = Coordinator.open(dir, { tickMs: 5 });
  const b = Coordinator.open(dir, { tickMs: 5 });
  t.teardown(() => { a.close(); b.close(); });
  return { dir, a, b };
}

/**
 * Stops Date.now() for the rest of the test and moves it forward only by hand, so that "idle for
 * longer than X" is reached by advancing the clock, not by sleeping and hoping.
 */
function manualClock(t: { teardown(fn: () => void): void }) {
  const realNow = Date.now;
  const frozen = realNow();
  let offset = 0;
  Date.now = () => frozen + offset;
  t.teardown(() => { Date.now = realNow; });
  return { advance: (ms: number) => { offset += ms; } };
}

/** The row of `region` in `c`'s lease table of md0. */
const leaseRow = (c: LocalCoordinator, region: number) => c.leaseStore('md0').list().find((l) => l.region === region);

/** A cache whose lease statements run here, over a store whose SQL calls are counted. */
function countedCache(c: LocalCoordinator, opts = {}) {
  const store = new LeaseStore(c.db, c.id, 'md0');
  const calls = { n: 0 };
  for (const m of ['tryAcquire', 'markDirty', 'markClean', 'yield', 'wanted', 'held', 'unwantAll'] as const) {
    const orig = store[m].bind(store) as (...a: unknown[]) => unknown;
    (store as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => { calls.n++; return orig(...a); };
  }
  const cache = new LeaseCache(leaseOpsOver(leaseSteps(store, c.controllers, c.id)), 'md0', c.watcher, opts);
  return { cache, store, calls };
}

t.test('a held lease is re-acquired without SQL; a write marks it dirty first', async (t) => {
  const { a } = pair(t);
  const { cache, store, calls } = countedCache(a);
  t.teardown(() => cache.close());
  await cache.acquire(3, { write: false });
  cache.release(3, { write: false });
  const after = calls.n;
  for (let i = 0; i < 1000; i++) {
    await cache.acquire(3, { write: false });
    cache.release(3, { write: false });
  }
  t.equal(calls.n, after, '1000 reads of a held region ran no SQL');
  t.equal(cache.tryAcquire(3, { write: true }), false, 'a first write cannot take the fast path');
  await cache.acquire(3, { write: true });
  t.equal(store.list()[0].dirty, true, 'the dirty bit is in the database before the write proceeds');
  t.equal(cache.isDirty(3), true);
  cache.release(3, { write: true });
  const dirtyCalls = calls.n;
  t.equal(cache.tryAcquire(3, { write: true }), true, 'later writes take the fast path');
  cache.release(3, { write: true });
  t.equal(calls.n, dirtyCalls);
  throwsCode(t, () => cache.release(3, { write: false }), 'EINVAL');
  t.same(cache.held(), [3]);
});

t.test('the dirty bit is cleared lazily after a flush once idle, not before', async (t) => {
  const { a } = pair(t);
  const { cache, store } = countedCache(a, { idleCleanMs: 30 });
  t.teardown(() => cache.close());
  await cache.acquireAll([2, 1], { write: true });
  const early = cache.flushToken();
  cache.releaseAll([1, 2], { write: true });
  cache.flushed(early);
  // Wait until both regions are idle for longer than idleCleanMs: a sweep could clear them now.
  await waitUntil(() => cache.hasIdleDirty(), 10_000, 'regions 1 and 2 idle and dirty');
  t.same(store.list().map((l) => l.dirty), [true, true], 'writes in flight at the token keep the bit');
  const token = cache.flushToken();
  await cache.acquire(2, { write: true });
  cache.release(2, { write: true });
  cache.flushed(token);
  t.same(store.list().map((l) => l.dirty), [true, true], 'not cleared before idle');
  await waitUntil(() => store.list().find((l) => l.region === 1)?.dirty === false, 10_000, 'the idle sweep clearing region 1');
  t.same(store.list().map((l) => [l.region, l.dirty]), [[1, false], [2, true]], 'region 1 cleared; region 2 was written after the token');
});

t.test('a flush for write intent is called for only once a dirty region has been idle', async (t) => {
  const { a } = pair(t);
  const { cache } = countedCache(a, { idleCleanMs: 50 });
  t.teardown(() => cache.close());
  t.equal(cache.hasIdleDirty(), false, 'nothing dirty, nothing to flush for');
  await cache.acquire(4, { write: true });
  const clock = manualClock(t);
  clock.advance(10 * 50);
  t.equal(cache.hasIdleDirty(), false, 'a write in flight keeps the region busy, however long it takes');
  cache.release(4, { write: true });
  t.equal(cache.hasIdleDirty(), false, 'just written: not idle yet');
  clock.advance(49);
  t.equal(cache.hasIdleDirty(), false, 'idle for less than idleCleanMs: still busy');
  clock.advance(2);
  t.equal(cache.hasIdleDirty(), true, 'idle for longer than idleCleanMs: a flush may clear its bit');
  await cache.acquire(4, { write: true });
  cache.release(4, { write: true });
  t.equal(cache.hasIdleDirty(), false, 'written again: busy again');
});

t.test('hand-over: the holder is told, drains its I/O, then the waiter gets the lease', async (t) => {
  const { a, b } = pair(t);
  const told: number[] = [];
  const la = a.leases('md0', { onWanted: (r) => told.push(r) });
  const lb = b.leases('md0');
  await la.acquire(5, { write: true });
  let granted = false;
  const waiting = lb.acquire(5, { write: false }).then(() => { granted = true; });
  await waitUntil(() => told.length > 0 && leaseRow(a, 5)?.wantedBy === b.id, 10_000, 'the holder told that region 5 is wanted');
  t.equal(granted, false, 'not granted while the holder has I/O in flight');
  t.same(told, [5], 'the holder was told');
  t.equal(la.tryAcquire(5, { write: false }), false, 'the holder admits no new I/O on a wanted region');
  la.release(5, { write: true });
  await waiting;
  t.same(lb.held(), [5]);
  t.same(la.held(), []);
  t.equal(lb.isDirty(5), true, 'the dirty bit travels with the lease');
  const rows = b.leaseStore('md0').list();
  t.match(rows, [{ region: 5, holder: b.id, wantedBy: null, dirty: true, epoch: 2 }]);
  lb.release(5, { write: false });
  await la.acquire(5, { write: false });
  t.same(la.held(), [5], 'and back, when the first holder asks again');
  la.release(5, { write: false });
  const kinds = a.events.list({ kindPrefix: 'lease.' }).map((e) => e.kind);
  t.same(kinds.filter((k) => k !== 'lease.dirty'), ['lease.granted', 'lease.wanted', 'lease.handed-over', 'lease.wanted', 'lease.handed-over']);
});

t.test('close gives leases back and fails pending acquires', async (t) => {
  const { a, b } = pair(t);
  const la = a.leases('md0');
  const lb = b.leases('md0');
  await la.acquire(1, { write: false });
  const pending = lb.acquire(1, { write: false });
  const outcome = pending.then(() => 'granted', (e: { code: string }) => e.code);
  await waitUntil(() => leaseRow(a, 1)?.wantedBy === b.id, 10_000, 'the second controller waiting for region 1');
  await lb.close();
  t.equal(await withDeadline(outcome, 10_000, 'the pending acquire ending'), 'ESHUTDOWN');
  await t.rejects(lb.acquire(2, { write: false }), { code: 'ESHUTDOWN' });
  la.release(1, { write: false });
  await la.close();
  t.same(a.leaseStore('md0').list().filter((l) => l.holder !== null), [], 'no lease held after close');
});

t.test('two processes hammer overlapping regions: mutual exclusion holds', async (t) => {
  const dir = tempStateDir(t);
  const slots = join(dir, 'slots');
  writeFileSync(slots, Buffer.alloc(4 * 8));
  const workers = [0, 1].map(() => spawnNode(WORKER, [dir, 'hammer', slots, '4', '400']));
  t.teardown(() => { for (const w of workers) w.proc.kill('SIGKILL'); });
  const results = await Promise.all(workers.map((w) => w.waitFor(/^done (\d+) (\d+) (\d+)$/, 90_000)));
  for (const [, holds, violations, wanted] of results) {
    t.equal(Number(holds), 400, 'every hold ran');
    t.equal(Number(violations), 0, 'nobody changed a slot during a hold');
    t.ok(Number(wanted) > 0, `the holder was asked for its regions (${wanted} times)`);
  }
  t.same((await Promise.all(workers.map((w) => w.exited))).map((e) => e.code), [0, 0]);
});

t.test('a SIGKILLed holder: its leases are freed, dirty ones recorded for resync', async (t) => {
  const dir = tempStateDir(t);
  const holder = spawnNode(WORKER, [dir, 'hold', '0,1,2,3', '1,2']);
  t.teardown(() => holder.proc.kill('SIGKILL'));
  const [, holderId] = await holder.waitFor(/^held (\d+)$/);
  const c = Coordinator.open(dir, { tickMs: 10 });
  t.teardown(() => c.close());
  const leases = c.leases('md0');
  const waiting = leases.acquire(1, { write: false });
  await waitUntil(() => leaseRow(c, 1)?.wantedBy === c.id, 10_000, 'region 1 wanted from the live holder');
  t.equal(leaseRow(c, 1)?.holder, Number(holderId), 'waiting on a live holder');
  t.equal(c.controllers.isAlive(Number(holderId)), true);
  await withDeadline(killHard(holder), 10_000, 'the holder exiting on SIGKILL');
  await withDeadline(waiting, 20_000, 'region 1 granted once its holder is dead');
  t.pass('granted after the kill');
  // The periodic reaping frees the leases nobody waited for as well.
  await waitUntil(() => c.leaseStore('md0').list().every((l) => l.holder !== Number(holderId)), 20_000, 'the dead holder\'s other leases freed');
  const rows = c.leaseStore('md0').list();
  t.same(rows.map((l) => [l.region, l.holder]), [[1, c.id]], 'only the lease we took remains');
  t.equal(rows[0].dirty, false, 'the new holder starts clean');
  t.same(c.leaseStore('md0').pendingResync().map((r) => [r.region, r.fromController]), [[1, Number(holderId)], [2, Number(holderId)]]);
  t.equal(c.controllers.require(Number(holderId)).state, 'dead');
  const dead = c.events.list({ kindPrefix: 'controller.dead' });
  t.match(dead[0]?.detail, { controller: Number(holderId), leasesFreed: 4, dirtyRegions: [{ region: 1 }, { region: 2 }] });
  c.leaseStore('md0').clearResync([1, 2]);
  t.same(c.leaseStore('md0').pendingResync(), []);
  leases.release(1, { write: false });
});

t.test('a flush begun before a hand-over does not clear the bit of the peer\'s writes', async (t) => {
  const { a, b } = pair(t);
  const la = a.leases('md0', { idleCleanMs: 20 });
  const lb = b.leases('md0', { idleCleanMs: 60_000 });
  await lb.acquire(7, { write: true });
  lb.release(7, { write: true });
  await la.acquire(7, { write: false }); // the lease comes to a, dirty
  la.release(7, { write: false });
  t.equal(la.isDirty(7), true, 'a adopted the dirty bit');
  const token = la.flushToken(); // a's flush of the members begins...
  await lb.acquire(7, { write: true }); // ...b writes region 7 meanwhile...
  lb.release(7, { write: true });
  await la.acquire(7, { write: false }); // ...and a has it back
  la.release(7, { write: false });
  t.equal(leaseRow(a, 7)?.holder, a.id, 'back at a');
  la.flushed(token); // the flush begun before b's write ends
  await new Promise((r) => setTimeout(r, 300)); // several idleCleanMs: a wrong clear would have run
  t.equal(leaseRow(a, 7)?.dirty, true, 'the bit of b\'s write, which the flush did not cover, is still set');
});

t.test('a closing holder hands a wanted dirty lease over with its bit, recording no resync', async (t) => {
  const { a, b } = pair(t);
  const la = a.leases('md0');
  const lb = b.leases('md0');
  await la.acquire(3, { write: true });
  const got = lb.acquire(3, { write: false });
  await waitUntil(() => leaseRow(b, 3)?.wantedBy === b.id, 10_000, 'b waiting for region 3');
  la.release(3, { write: true }); // the last I/O ends and the controller stops in the same turn
  const closed = a.close();
  await withDeadline(got, 10_000, 'b getting region 3');
  await closed;
  t.same(b.leaseStore('md0').pendingResync().map((r) => r.region), [], 'no resync recorded for a lease handed over');
  t.equal(lb.isDirty(3), true, 'the dirty bit travelled with the lease');
  lb.release(3, { write: false });
});
