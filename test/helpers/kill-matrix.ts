// The before and after of every kill-matrix case: an array with verified data on it, and the proof
// that after a kill it is whole again, parity right everywhere, the acknowledged data intact.
import type { Test } from 'tap';
import {
  MiB, createArray, fioVerify, scrub, startController, waitFor, type ControllerProcess, type FioRange, type TestArray,
} from './cluster.js';
import { tempDir } from './temp-dir.js';

export const MEMBER = 16 * MiB;
export const MEMBERS = 4;
/**
 * Members of one region (3 x 7 MiB of data, under a region's 24 MiB): a rebuild is one partition,
 * so its recovered prefix jumps from nothing to all at the completion and no recovery_offset
 * superblock write comes between (the superblock kill points count those writes exactly).
 */
export const ONE_REGION_MEMBER = 8 * MiB;

interface Status { state: string; slots: string }

/** An array with data written, FLUSHed and verified through a controller that then stopped cleanly. */
export async function writtenArray(t: Test, spare = true, memberSize = MEMBER): Promise<{ arr: TestArray; written: FioRange }> {
  const arr = await createArray(tempDir(t), { memberSize, members: MEMBERS, spare });
  const c = await startController(t, arr);
  const written = { uri: c.uri, offset: 0, size: Math.min(12 * MiB, (MEMBERS - 1) * (memberSize - MiB)) };
  const r = await fioVerify([written], { runtime: 60 });
  t.equal(r.failed, false, 'data written and verified before the kill');
  await c.stop();
  return { arr, written };
}

/** After a kill: the array is whole again, parity right everywhere, the acknowledged data intact. */
export async function healthy(t: Test, arr: TestArray, written: FioRange, via: ControllerProcess): Promise<void> {
  const status = await waitFor('the array to be optimal', async () => {
    const s = await arr.json<Status>(['status', arr.name]);
    return s.slots === 'U'.repeat(MEMBERS) ? s : undefined;
  }, 60_000);
  t.equal(status.slots, 'U'.repeat(MEMBERS), `optimal (${status.state})`);
  await arr.cli(['throttle', arr.name, '--min', '1000', '--max', '0']);
  const check = await scrub(arr, 'check');
  t.same([check.state, check.result?.mismatches], ['DONE', 0], 'check reports 0 mismatches');
  const again = await fioVerify([{ ...written, uri: via.uri }], { verifyOnly: true, runtime: 60 });
  t.equal(again.failed, false, 'every write acknowledged before the kill verifies');
}
