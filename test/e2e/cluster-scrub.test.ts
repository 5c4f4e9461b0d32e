// Parity scrub across two controllers: with the cluster stopped, bytes are flipped in chosen
// stripes of member 1 (some where it holds data, some where it holds parity, written and never
// written stripes); after a restart `nbdraid check` reports exactly those stripes with their volume
// and member offsets, `nbdraid repair` rewrites their parity, and a second check finds none.
import t from 'tap';
import { MiB, createArray, fioVerify, flipBytes, leftSymmetric, memberLayout, scrub, startController } from '../helpers/cluster.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 64 * MiB;
const MEMBERS = 5;
const FLIPPED_MEMBER = 1;
// 3 and 13: member 1 holds their parity; 40 was never written; 125 is the last stripe.
const STRIPES = [3, 13, 17, 40, 70, 125];

t.test('check reports exactly the corrupted stripes, repair fixes them, check finds none', async (tt) => {
  const arr = await createArray(tempDir(tt), { memberSize: MEMBER, members: MEMBERS });
  const [a, b] = await Promise.all([startController(tt, arr), startController(tt, arr)]);
  await fioVerify([{ uri: a.uri, offset: 0, size: 64 * MiB }, { uri: b.uri, offset: 128 * MiB, size: 64 * MiB }], { runtime: 60 });

  const clean = await scrub(arr, 'check');
  tt.equal(clean.result?.mismatches, 0, 'a freshly written array has no mismatch');

  await Promise.all([a.stop(), b.stop()]);
  const geo = await memberLayout(arr, arr.members[FLIPPED_MEMBER]);
  flipBytes(arr.members[FLIPPED_MEMBER], geo.dataOffset, geo.chunk, STRIPES);
  tt.same(STRIPES.filter((s) => leftSymmetric.parityDisk(s, MEMBERS) === FLIPPED_MEMBER), [3, 13], 'the chosen stripes include parity chunks of member 1');
  await Promise.all([startController(tt, arr), startController(tt, arr)]);

  const want = STRIPES.map((s) => ({
    stripe: s,
    volumeOffset: s * (MEMBERS - 1) * geo.chunk,
    memberOffset: geo.dataOffset + s * geo.chunk,
    parityMember: leftSymmetric.parityDisk(s, MEMBERS),
  }));
  const found = await scrub(arr, 'check');
  tt.equal(found.state, 'DONE', 'check completes');
  tt.equal(found.result?.mismatches, STRIPES.length, `check counts ${STRIPES.length} mismatches`);
  tt.same(found.result?.list.map(({ stripe, volumeOffset, memberOffset, parityMember }) => ({ stripe, volumeOffset, memberOffset, parityMember })), want,
    'check lists exactly the corrupted stripes with their volume and member offsets');

  const repaired = await scrub(arr, 'repair');
  tt.equal(repaired.state, 'DONE', 'repair completes');
  tt.equal(repaired.result?.mismatches, STRIPES.length, 'repair found the same stripes');
  tt.same(repaired.result?.list.map((m) => m.stripe), STRIPES, 'repair lists the same stripes');

  const after = await scrub(arr, 'check');
  tt.equal(after.state, 'DONE', 'the second check completes');
  tt.equal(after.result?.mismatches, 0, 'after repair check finds no mismatch');
  tt.same(after.result?.list, [], 'and lists none');
});
