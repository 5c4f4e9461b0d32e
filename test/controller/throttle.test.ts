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
