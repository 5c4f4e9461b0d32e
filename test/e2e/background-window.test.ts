// Background work gives a region up between small windows: while a throttled check holds a
// region on one controller, a client's read of that region through another controller is served
// once the windows in flight are done, not after the whole region's pass. The check's checkpoint
// shows where the hand-over happened: strictly inside the region.
import t from 'tap';
import { NbdClient } from '../../lib/transport/client.js';
import { MiB, createArray, startController, taskOf, waitFor, waitTaskEnd } from '../helpers/cluster.js';
import { withDeadline } from '../helpers/deadline.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 64 * MiB;
/** 4 data members x 512 KiB chunks. */
const STRIPE_DATA = 2 * MiB;
/** regionStripes() for this geometry: 32 MiB of data. */
const REGION_STRIPES = 16;

t.test('a peer\'s read of a region under a throttled check is served mid-region', async (tt) => {
  const arr = await createArray(tempDir(tt), { memberSize: MEMBER });
  // 1 MB/s: one region (16 stripes, 8 MiB per member) takes this controller at least 8 s.
  await arr.cli(['throttle', arr.name, '--min', '1', '--max', '1']);
  const [a, b] = await Promise.all([startController(tt, arr), startController(tt, arr)]);
  await arr.cli(['check', arr.name, '--no-wait']);

  // A partition (one region each here) that `a` works on and has not checkpointed yet.
  const target = await waitFor('a check partition in progress on the first controller', async () => {
    const task = await taskOf(arr, 'check');
    return task?.inProgress.find((p) => p.owner === a.id && p.checkpoint === null && p.stripeEnd - p.stripeStart === REGION_STRIPES);
  }, 60_000, 100);
  const region = { start: target.stripeStart, end: target.stripeEnd };

  const client = await NbdClient.connect({ host: '127.0.0.1', port: b.port, exportName: arr.name });
  tt.teardown(() => client.close());
  await withDeadline(client.read(region.start * STRIPE_DATA + STRIPE_DATA / 2, 4096), 60_000, 'the read through the second controller');

  const task = await taskOf(arr, 'check');
  const part = task?.inProgress.find((p) => p.idx === target.idx);
  tt.ok(part, `partition ${target.idx} is still in progress after the read (the region's pass was not finished first)`);
  const next = (part?.checkpoint as { next?: number } | null)?.next;
  tt.ok(next !== undefined && next > region.start && next < region.end,
    `the holder checkpointed at stripe ${next} inside [${region.start}, ${region.end}) and handed the region over`);

  await arr.cli(['throttle', arr.name, '--min', '0', '--max', '0']);
  const done = await waitTaskEnd(arr, 'check', 120_000);
  tt.equal(done.task.state, 'DONE', 'the check completes after the hand-over');
  tt.equal((done.task.result as { mismatches?: number } | null)?.mismatches, 0, 'and finds no mismatch');
});
