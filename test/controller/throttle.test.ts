import t from 'tap';
import { Throttle, type Clock } from '../../lib/controller/throttle.js';

/** A clock that advances only when someone sleeps: measures the waits the throttle imposes. */
function fakeClock(): Clock & { t: number; slept: number } {
  const c = {
    t: 0,
    slept: 0,
    now: () => c.t,
    sleep: async (ms: number) => { c.t += ms; c.slept += ms; },
  };
  return c;
}

t.test('idle: paced at maxMBps', async (t) => {
  const clock = fakeClock();
  const th = new Throttle({ minMBps: 1, maxMBps: 100, inflight: 4 }, clock);
  for (let i = 0; i < 100; i++) (await th.acquire(1_000_000))();
  // 100 MB at 100 MB/s = 1 s (minus at most the 50 ms burst allowance)
  t.ok(clock.t >= 950 && clock.t <= 1000, `elapsed ${clock.t} ms`);
});

t.test('foreground busy: paced at minMBps', async (t) => {
  const clock = fakeClock();
  const th = new Throttle({ minMBps: 10, maxMBps: 100, inflight: 4 }, clock, 1e9);
  th.noteForeground();
  for (let i = 0; i < 10; i++) (await th.acquire(1_000_000))();
  t.ok(clock.t >= 950 && clock.t <= 1000, `10 MB at 10 MB/s took ${clock.t} ms`);
});

t.test('max 0 means unlimited when idle', async (t) => {
  const clock = fakeClock();
  const th = new Throttle({ minMBps: 1, maxMBps: 0, inflight: 4 }, clock);
  for (let i = 0; i < 100; i++) (await th.acquire(10_000_000))();
  t.equal(clock.slept, 0);
});

t.test('limits change while running', async (t) => {
  const clock = fakeClock();
  const th = new Throttle({ minMBps: 1, maxMBps: 10, inflight: 4 }, clock);
  (await th.acquire(1_000_000))();
  th.setLimits({ minMBps: 1, maxMBps: 1000, inflight: 4 });
  t.same(th.getLimits(), { minMBps: 1, maxMBps: 1000, inflight: 4 });
  const before = clock.t;
  for (let i = 0; i < 10; i++) (await th.acquire(1_000_000))();
  t.ok(clock.t - before <= 110, `after raising max the next 10 MB took ${clock.t - before} ms`);
});

t.test('inflight bound', async (t) => {
  const th = new Throttle({ minMBps: 1, maxMBps: 0, inflight: 2 }, fakeClock());
  const a = await th.acquire(1);
  const b = await th.acquire(1);
  let third = false;
  const p = th.acquire(1).then((rel) => { third = true; return rel; });
  await new Promise((r) => setImmediate(r));
  t.equal(third, false, 'third waits while two are in flight');
  a();
  a(); // double release is harmless
  const c = await p;
  t.equal(third, true);
  b();
  c();
});

/** Virtual time for concurrent sleepers: time jumps to the earliest wake-up once all are waiting. */
function virtualClock(): Clock & { t: number; run(): Promise<void> } {
  const timers: { at: number; wake: () => void }[] = [];
  const c = {
    t: 0,
    now: () => c.t,
    sleep: (ms: number) => new Promise<void>((wake) => { timers.push({ at: c.t + ms, wake }); }),
    async run(): Promise<void> {
      for (let guard = 0; guard < 100_000; guard++) {
        await new Promise((r) => setImmediate(r));
        if (timers.length === 0) return;
        timers.sort((a, b) => a.at - b.at);
        const next = timers.shift()!;
        c.t = Math.max(c.t, next.at);
        next.wake();
      }
      throw new Error('virtual clock: still sleeping after 100,000 wake-ups');
    },
  };
  return c;
}

t.test('concurrent acquirers together keep to the rate, however long each must wait', async (t) => {
  const clock = virtualClock();
  const th = new Throttle({ minMBps: 1, maxMBps: 1, inflight: 8 }, clock);
  const done = Promise.all(Array.from({ length: 8 }, async () => (await th.acquire(2_000_000))()));
  await clock.run();
  await done;
  // 16 MB at 1 MB/s: 16 s, less the 50 ms burst allowance
  t.ok(clock.t >= 15_950, `8 x 2 MB at 1 MB/s took ${clock.t} virtual ms`);
});

t.test('lifting the limit releases acquirers already waiting', async (t) => {
  const clock = virtualClock();
  const th = new Throttle({ minMBps: 1, maxMBps: 1, inflight: 8 }, clock);
  const done = Promise.all(Array.from({ length: 4 }, async () => (await th.acquire(10_000_000))()));
  await new Promise((r) => setImmediate(r));
  th.setLimits({ minMBps: 1, maxMBps: 0, inflight: 8 });
  await clock.run();
  await done;
  t.ok(clock.t <= 1000, `released within the first one-second slice (${clock.t} virtual ms)`);
});
