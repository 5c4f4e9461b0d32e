// Fault injection with FaultDevice members: a failing member is marked faulty (superblocks updated,
// events bumped) and I/O goes on degraded with data intact; a second failure takes the volume
// offline (EIO everywhere, one log line) and nothing acknowledged is lost.
import t from 'tap';
import type { MemoryDevice } from '../../lib/transport/memory-device.js';
import { assembleArray } from '../../lib/raid/assemble.js';
import { readSuperblock } from '../../lib/raid/metadata.js';
import { ROLE_FAULTY, isClean } from '../../lib/raid/superblock.js';
import { RaidVolume } from '../../lib/raid/volume.js';
import { waitUntil } from '../helpers/deadline.js';
import { faultyArray, fill, memoryArray, readAll } from './fixture.js';
import { randomBytes, rng } from '../helpers/prng.js';
import { rejectsWith } from './util.js';

const MAX_SECTORS = 80;

t.test('read EIO mid-run: member faulty, superblocks updated, data intact', async (t) => {
  const { vol, faults, logs, failed } = await faultyArray();
  const rand = rng(7);
  const ref = Buffer.alloc(vol.size);
  await fill(vol, ref, rand, 30, MAX_SECTORS);
  const before = (await readSuperblock(faults[0].inner, 'm0')).events;
  faults[1].inject({ ops: ['read'] });
  t.ok((await readAll(vol)).equals(ref), 'reads succeed and match while member 1 fails');
  t.equal(vol.slots[1].state, 'faulty');
  t.same(failed, [1], 'onMemberFailed called once');
  t.ok(vol.ioErrors[1] >= 1, `member 1's read errors are counted (${vol.ioErrors[1]})`);
  t.same(vol.ioErrors.filter((_, i) => i !== 1), [0, 0, 0, 0].slice(0, vol.ioErrors.length - 1), 'and no other member has any');
  t.equal(logs.filter((l) => l.includes('member 1') && l.includes('faulty')).length, 1, 'one log line');
  const sb0 = await readSuperblock(faults[0].inner, 'm0');
  t.equal(sb0.devRoles[1], ROLE_FAULTY, 'survivor superblock records member 1 faulty');
  t.ok(sb0.events > before, `events bumped (${before} -> ${sb0.events})`);
  await fill(vol, ref, rand, 30, MAX_SECTORS);
  t.ok((await readAll(vol)).equals(ref), 'degraded writes and reads match');
  t.same(await vol.checkStripes(0, 1).catch((e: Error) => e.message), `array prop: cannot check while slot 1 is faulty; rebuild first`);
  await vol.close();
  // Re-assembly from the members alone: member 1 is refused as faulty, the data is all there.
  const again = await assembleArray(faults.map((f) => ({ device: f.inner })));
  t.same(again.missing, [1]);
  t.equal(again.report.find((r) => r.devNumber === 1)?.verdict, 'faulty');
  const vol2 = new RaidVolume(again.meta, { log: () => undefined });
  t.ok((await readAll(vol2)).equals(ref), 're-assembled degraded volume holds every acknowledged write');
  await vol2.close();
});

t.test('write EIO: the write is acknowledged degraded and parity covers the failed member', async (t) => {
  const { vol, faults, failed } = await faultyArray(5, 4096, 20);
  const rand = rng(8);
  const ref = Buffer.alloc(vol.size);
  await fill(vol, ref, rand, 10, MAX_SECTORS);
  faults[3].inject({ ops: ['write'] });
  await fill(vol, ref, rand, 40, MAX_SECTORS);
  t.same(failed, [3]);
  t.ok(vol.ioErrors[3] >= 1, "member 3's write error is counted");
  t.ok((await readAll(vol)).equals(ref), 'every write reads back');
  await vol.close();
});

t.test('a second failure takes the volume offline; nothing acknowledged is lost', async (t) => {
  const { vol, faults, logs, meta } = await faultyArray(4, 8192, 24);
  const rand = rng(9);
  const ref = Buffer.alloc(vol.size);
  await fill(vol, ref, rand, 20, MAX_SECTORS);
  faults[0].failAll();
  await fill(vol, ref, rand, 20, MAX_SECTORS);
  t.equal(vol.slots[0].state, 'faulty');
  faults[2].inject({ ops: ['write'] });
  // Writes in flight when member 2 dies: none may be acknowledged, any may be half done.
  const attempts = Array.from({ length: 8 }, (_, i) => ({ off: i * 9000 + 100, data: randomBytes(rand, 5000) }));
  const results = await Promise.allSettled(attempts.map((a) => vol.write(a.off, a.data)));
  t.ok(results.every((r) => r.status === 'rejected'), 'no write acknowledged after the second failure');
  t.ok(vol.offline, 'volume offline');
  await rejectsWith(t, () => vol.read(0, Buffer.alloc(10)), 'EIO', 'array prop: offline', 'reads fail');
  await rejectsWith(t, () => vol.write(0, Buffer.alloc(10)), 'EIO', 'array prop: offline', 'writes fail');
  await rejectsWith(t, () => vol.flush(), 'EIO', 'array prop: offline', 'flush fails');
  t.equal(logs.filter((l) => l.includes('OFFLINE')).length, 1, 'exactly one offline log line');
  await vol.close();
  // Every write acknowledged before the failure survives on the members (member 2 readable again).
  faults[2].clear();
  const again = await assembleArray(faults.slice(1).map((f) => ({ device: f.inner as MemoryDevice })), { force: true });
  const vol2 = new RaidVolume(again.meta, { log: () => undefined, trackClean: false });
  const now = await readAll(vol2);
  for (const a of attempts) ref.fill(0xee, a.off, a.off + a.data.length);
  for (const a of attempts) now.fill(0xee, a.off, a.off + a.data.length);
  t.ok(now.equals(ref), 'acknowledged data intact outside the failed requests');
  t.ok(meta.events >= 2);
  await vol2.close();
});

t.test('concurrent writes into one stripe never interleave parity updates', async (t) => {
  const { vol } = await faultyArray(5, 65536, 4);
  const rand = rng(10);
  const ref = Buffer.alloc(vol.size);
  const writes = Array.from({ length: 64 }, (_, i) => ({ off: vol.g.stripeData + i * 4096 + (i % 3) * 512, data: randomBytes(rand, 3000) }));
  await Promise.all(writes.map((w) => vol.write(w.off, w.data)));
  for (const w of writes) w.data.copy(ref, w.off);
  t.same(await vol.checkStripes(0, vol.g.stripes), [], 'parity right on every stripe');
  t.ok((await readAll(vol)).equals(ref));
  await vol.close();
});

t.test('superblocks: dirty while writing, clean when idle and after close', async (t) => {
  const { vol, faults } = await faultyArray(3, 4096, 8);
  await vol.write(0, Buffer.alloc(4096, 1));
  t.notOk(isClean(await readSuperblock(faults[1].inner, 'm1')), 'dirty after a write');
  await waitUntil(async () => isClean(await readSuperblock(faults[1].inner, 'm1')), 10_000, 'the superblock of m1 marked clean once idle');
  t.pass('clean again after the idle delay');
  await vol.write(0, Buffer.alloc(100, 2));
  t.notOk(isClean(await readSuperblock(faults[0].inner, 'm0')), 'dirty again after another write');
  await vol.close();
  t.ok(isClean(await readSuperblock(faults[0].inner, 'm0')), 'clean after close');
});

t.test('flush syncs every in-sync member exactly once, and only flush does', async (t) => {
  // No clean tracking: no superblock commit flushes anything, so every member flush seen here
  // is the FLUSH under test. It covers every in-sync member, written by this volume or not: a
  // FLUSH also covers writes that other controllers acknowledged.
  const { vol, faults } = await faultyArray(4, 4096, 8, { trackClean: false });
  const start = faults.map((f) => f.counts.flush); // creating the array flushed its superblocks
  const counts = () => faults.map((f, i) => f.counts.flush - start[i]);
  await vol.write(0, Buffer.alloc(100, 2)); // chunk 0 of stripe 0 plus its parity: two members
  t.same(counts(), [0, 0, 0, 0], 'a write alone flushes no member');
  await vol.flush();
  t.same(counts(), [1, 1, 1, 1], 'one flush per in-sync member, the two written and the two not');
  await vol.failMember(3, 'test');
  const before = counts();
  await vol.flush();
  t.same(counts().map((n, i) => n - before[i]), [1, 1, 1, 0], 'a faulty member is not flushed');
  await vol.close();
});

t.test('gate is entered around each request with its regions', async (t) => {
  const { meta } = await memoryArray(4, 4096, 'left-symmetric', 40);
  const calls: string[] = [];
  let inside = 0;
  const vol = new RaidVolume(meta, {
    log: () => undefined,
    gate: {
      regionStripes: 8,
      enter: async (a, b, w) => { calls.push(`enter ${a}-${b} ${w ? 'w' : 'r'}`); inside++; },
      leave: (a, b) => { calls.push(`leave ${a}-${b}`); inside--; },
    },
  });
  const sd = vol.g.stripeData;
  await vol.write(7 * sd, Buffer.alloc(2 * sd, 3));
  await vol.read(20 * sd, Buffer.alloc(10));
  await vol.writeZeroes(0, 40 * sd);
  t.same(calls, ['enter 0-1 w', 'leave 0-1', 'enter 2-2 r', 'leave 2-2', 'enter 0-4 w', 'leave 0-4']);
  t.equal(inside, 0);
  await vol.close();
});
