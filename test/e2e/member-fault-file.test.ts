// A member fault through the real file path: member 3 of a 3+1 array is a file on nbdfuse over
// nbdkit's error filter. fio writes crc32c-tagged data through `nbdraid serve`; mid-load the
// member's writes start failing with EIO. The controller fails that member and goes on degraded:
// fio's verify of every acknowledged write passes, status shows the member faulty, and a fresh
// controller assembled from the members alone (member 3 left behind) serves the same data.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { MiB, createArray, startController, startFio, waitFor, type FioRange } from '../helpers/cluster.js';
import { startFaultMember } from '../helpers/fault-member.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 64 * MiB;
const FAULTY = 3;

interface Status { state: string; slots: string; members: { path: string; slot: number | null; state: string }[] }

const allocated = (file: string): number => fs.statSync(file).blocks * 512;

t.test('member writes fail mid-load through nbdfuse: member failed, degraded, every acknowledged write reads back', async (tt) => {
  const dir = tempDir(tt);
  const faulty = await startFaultMember(tt, 'm3', MEMBER);
  fs.symlinkSync(faulty.file, path.join(dir, `m${FAULTY}`));
  const arr = await createArray(dir, { memberSize: MEMBER, members: 4 });
  const c0 = await startController(tt, arr);
  const before = await arr.json<Status>(['status', arr.name]);
  tt.equal(before.slots, 'UUUU', 'optimal before the fault');

  const ranges: FioRange[] = [{ uri: c0.uri, offset: 0, size: 24 * MiB }, { uri: c0.uri, offset: 96 * MiB, size: 24 * MiB }];
  const fio = startFio(ranges, { writeRate: 8 * MiB, runtime: 60 });
  tt.teardown(() => fio.kill());
  const start = allocated(arr.members[0]);
  await waitFor('fio to have written 4 MiB to member 0', async () => (allocated(arr.members[0]) - start >= 4 * MiB ? true : undefined), 30_000, 50);
  tt.notOk(fio.exited(), 'fio is still writing when the member starts failing');
  faulty.failWrites();

  const failed = await waitFor('member 3 to be failed', async () => {
    const s = await arr.json<Status>(['status', arr.name]);
    return s.slots[FAULTY] !== 'U' ? s : undefined;
  }, 30_000, 100);
  tt.equal(failed.slots, 'UUU_', `the array runs degraded without member 3 (state ${failed.state})`);
  tt.match(failed.members.find((m) => m.path.endsWith(`m${FAULTY}`))?.state ?? '', /faulty/, 'status shows member 3 faulty');
  tt.match(c0.stderr(), /member 3.*faulty|faulty.*member 3/, 'the controller logs the failure');

  const done = await fio.result;
  tt.notOk(done.failed, 'fio wrote and verified every block: nothing acknowledged was lost');

  await c0.stop();
  faulty.healWrites(); // the member is writable again, but stays behind by events
  const c1 = await startController(tt, arr);
  const again = await arr.json<Status>(['status', arr.name]);
  tt.equal(again.slots, 'UUU_', 'assembled from the members alone, member 3 is left out');
  const reread = await startFio(ranges.map((r) => ({ ...r, uri: c1.uri })), { verifyOnly: true, runtime: 60 }).result;
  tt.notOk(reread.failed, 'a fresh controller serves every acknowledged write');
});
