// A region's windowed pass (region-pass.ts) over a real volume: once the region is wanted it
// starts no further window, not even one whose throttle slot it was already waiting for, and no
// step outlives the pass.
import t from 'tap';
import { runPass } from '../../lib/controller/region-pass.js';
import { Throttle } from '../../lib/controller/throttle.js';
import { faultyArray } from '../raid/fixture.js';

t.test('no window starts once the region is wanted; every step has settled when the pass returns', async (t) => {
  // 4 members of 32 stripes, 256 KiB chunks: a window is 2 stripes (512 KiB per member).
  const { vol, faults } = await faultyArray(4, 256 * 1024, 32);
  for (const f of faults) f.inject({ ops: ['read'], delay: 40 }); // slow members: steps overlap
  const real = new Throttle({ minMBps: 4, maxMBps: 4, inflight: 8 });
  let wanted = false;
  let grantedBeforeWanted = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const throttle = {
    acquire: async (bytes: number) => {
      const release = await real.acquire(bytes);
      if (!wanted) grantedBeforeWanted++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return () => { inFlight--; release(); };
    },
  } as unknown as Throttle;
  const timer = setTimeout(() => { wanted = true; }, 400); // a few windows in
  t.teardown(() => clearTimeout(timer));
  const cp = { next: 0, mismatches: [] };
  const stop = await runPass({ volume: vol, throttle, checkpoint: async () => undefined, shouldYield: () => wanted }, { taskId: 1, idx: 0 }, 'check', null, cp, 32);
  t.ok(wanted, 'the region was wanted during the pass');
  t.ok(stop > 0 && stop < 32, `the pass ended early, at stripe ${stop} of 32`);
  t.equal(stop / 2, grantedBeforeWanted, `windows run = throttle slots granted before the region was wanted (${grantedBeforeWanted})`);
  t.equal(inFlight, 0, 'every step settled (and gave its throttle slot back) before the pass returned');
  t.ok(maxInFlight <= 4, `at most 4 steps in flight (${maxInFlight})`);
  t.same(cp.mismatches, [], 'a fresh array checks clean');
});
