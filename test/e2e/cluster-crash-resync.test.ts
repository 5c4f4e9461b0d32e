// Every controller SIGKILLed while clients write, then restarted: a resync task recomputes parity
// of the regions left dirty (those written at the time of the crash, and at most the region written
// and flushed shortly before), never the whole array. Parity torn by hand while the cluster is down
// shows it: in a dirty region the resync fixes it, in a clean one it is left for check to find.
// After a repair check finds no mismatch, and data written and FLUSHed before the crash verifies.
import t from 'tap';
import {
  MiB, createArray, fioVerify, flipBytes, leftSymmetric, memberLayout, scrub, startController, startFio, waitFor, waitTaskEnd, type EventJson, type FioRange,
} from '../helpers/cluster.js';
import { sleep } from '../helpers/processes.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 128 * MiB;
/** Volume data per region with 5 members of 512 KiB chunks (see lib/controller/plans.ts). */
const REGION = 32 * MiB;
const STRIPES = Math.floor((MEMBER - MiB) / (512 * 1024));
const STRIPES_PER_REGION = 16;

t.test('all controllers SIGKILLed during writes: resync of the dirty regions only', async (tt) => {
  const arr = await createArray(tempDir(tt), { memberSize: MEMBER });
  const first = await Promise.all([0, 1, 2].map(() => startController(tt, arr)));

  // Written, FLUSHed (fio's end_fsync) and verified before the crash: region 0.
  const flushed: FioRange = { uri: first[0].uri, offset: 0, size: 24 * MiB };
  const before = await fioVerify([flushed], { runtime: 60 });
  tt.equal(before.failed, false, 'data written before the crash verifies');

  // In flight at the crash: regions 5 and 9, through two other controllers.
  const inFlight = [5, 9];
  const crashLoad = startFio([
    { uri: first[1].uri, offset: inFlight[0] * REGION, size: REGION },
    { uri: first[2].uri, offset: inFlight[1] * REGION, size: REGION },
  ], { writeRate: 2 * MiB, runtime: 60, allowFailure: true });
  tt.teardown(() => crashLoad.kill());
  await waitFor('write intent on the regions being written', async () => {
    const events = await arr.json<EventJson[]>(['events', '--array', arr.name, '--limit', '100000']);
    const dirty = new Set(events.filter((e) => e.kind === 'lease.dirty').flatMap((e) => (e.detail as { regions: number[] }).regions));
    return inFlight.every((r) => dirty.has(r)) ? true : undefined;
  }, 30_000);
  await sleep(500);
  tt.notOk(crashLoad.exited(), 'fio is still writing when every controller is killed');
  await Promise.all(first.map((c) => c.kill()));
  await crashLoad.kill();

  // Parity torn in a stripe of a dirty region (the resync must fix it) and in a stripe of a region
  // never written (the resync must not look at it: check finds it afterwards).
  const geo = await memberLayout(arr, arr.members[0]);
  const torn = inFlight[0] * STRIPES_PER_REGION + 1;
  const untouched = 12 * STRIPES_PER_REGION + 8;
  for (const s of [torn, untouched]) flipBytes(arr.members[leftSymmetric.parityDisk(s, 5)], geo.dataOffset, geo.chunk, [s]);

  const second = await Promise.all([0, 1, 2].map(() => startController(tt, arr)));
  const resync = await waitTaskEnd(arr, 'resync', 60_000);
  tt.equal(resync.task.state, 'DONE', `the resync task completes (${resync.task.reason ?? 'no reason'})`);
  const regions = [...(resync.task.dataset as { regions: number[] }).regions].sort((a, b) => a - b);
  tt.comment(`resync of regions ${regions.join(', ')} in ${resync.task.partitionsTotal} partition(s); result ${JSON.stringify(resync.task.result)}`);
  for (const r of inFlight) tt.ok(regions.includes(r), `region ${r}, written at the crash, is resynced`);
  tt.same(regions.filter((r) => ![0, ...inFlight].includes(r)), [], 'no region that was never written is resynced');
  tt.equal(resync.stripesTotal, regions.length * STRIPES_PER_REGION, 'its partitions cover exactly the dirty regions');
  tt.ok(resync.stripesTotal < STRIPES, `not the whole array (${resync.stripesTotal} of ${STRIPES} stripes)`);
  const fixed = (resync.task.result as { list: { stripe: number }[] }).list.map((m) => m.stripe);
  tt.ok(fixed.includes(torn), `the resync rewrote the torn parity of stripe ${torn}`);
  tt.notOk(fixed.includes(untouched), `and did not touch stripe ${untouched} of a clean region`);

  const check = await scrub(arr, 'check');
  tt.equal(check.state, 'DONE', 'check completes');
  tt.same(check.result?.list.map((m) => m.stripe), [untouched], 'check finds only the stripe of the clean region, left alone by the resync');
  await scrub(arr, 'repair');
  const clean = await scrub(arr, 'check');
  tt.equal(clean.result?.mismatches, 0, 'after repair check finds no parity mismatch');

  const after = await fioVerify([{ ...flushed, uri: second[1].uri }], { verifyOnly: true, runtime: 60 });
  tt.equal(after.failed, false, 'fio verify of the data flushed before the crash passes');
  tt.equal(after.jobs[0].read.io_bytes, flushed.size, 'all of it was verified');

  const status = await arr.json<{ slots: string }>(['status', arr.name]);
  tt.equal(status.slots, 'UUUUU', 'no member was failed by the crash');
});
