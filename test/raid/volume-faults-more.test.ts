// More member faults through FaultDevice: a torn write (a prefix reaches the medium, then the call
// fails), EIO on flush, ENOSPC, a slow member. For each the volume fails the member or reports the
// error, and nothing it acknowledged is lost or silently altered, live or re-assembled.
import t from 'tap';
import { FaultDevice } from '../../lib/transport/fault-device.js';
import type { MemoryDevice } from '../../lib/transport/memory-device.js';
import { assembleArray } from '../../lib/raid/assemble.js';
import { readSuperblock } from '../../lib/raid/metadata.js';
import { ROLE_FAULTY } from '../../lib/raid/superblock.js';
import { RaidVolume } from '../../lib/raid/volume.js';
import { NbdClient } from '../../lib/transport/client.js';
import { startServer } from '../transport/fixtures.js';
import { faultyArray, fill, readAll } from './fixture.js';
import { randomBytes, rng } from '../helpers/prng.js';
import { rejectsWith } from './util.js';

const MAX_SECTORS = 40;

/** Re-assembles from the inner devices alone (a restart) and returns the volume's whole content. */
async function reassembled(faults: FaultDevice[], opts: { force?: boolean; skip?: number } = {}) {
  const members = faults.filter((_, i) => i !== opts.skip).map((f) => ({ device: f.inner as MemoryDevice }));
  const again = await assembleArray(members, { force: opts.force });
  const vol = new RaidVolume(again.meta, { log: () => undefined, trackClean: false });
  const data = await readAll(vol);
  await vol.close();
  return { missing: again.missing, data };
}

t.test('a torn write in an optimal array: that member is failed, every write reads back, live and re-assembled', async (t) => {
  // Tear the write on each slot in turn: as a data chunk in some stripes, as parity in others.
  for (let slot = 0; slot < 4; slot++) {
    const { vol, faults, failed } = await faultyArray(4, 4096, 16);
    const rand = rng(20 + slot);
    const ref = Buffer.alloc(vol.size);
    await fill(vol, ref, rand, 20, MAX_SECTORS);
    faults[slot].inject({ ops: ['write'], tornAt: 1000 + slot * 7, times: 1 }); // not sector aligned
    const big = randomBytes(rand, 5 * vol.g.stripeData + 3000);
    await vol.write(1111, big);
    big.copy(ref, 1111);
    t.same(failed, [slot], `slot ${slot}: the member whose write tore is failed`);
    t.equal(vol.slots[slot].state, 'faulty');
    t.ok((await readAll(vol)).equals(ref), `slot ${slot}: degraded reads return every acknowledged write`);
    await fill(vol, ref, rand, 10, MAX_SECTORS);
    t.ok((await readAll(vol)).equals(ref), `slot ${slot}: and after more degraded writes`);
    await vol.close();
    const other = (slot + 1) % 4;
    t.equal((await readSuperblock(faults[other].inner, `m${other}`)).devRoles[slot], ROLE_FAULTY, `slot ${slot}: survivors record it faulty`);
    const again = await reassembled(faults);
    t.same(again.missing, [slot], `slot ${slot}: re-assembly leaves the torn member out`);
    t.ok(again.data.equals(ref), `slot ${slot}: the re-assembled volume holds every acknowledged write`);
  }
});

t.test('a torn write in a degraded array: not acknowledged, the volume goes offline, never wrong data', async (t) => {
  const { vol, faults, logs } = await faultyArray(4, 4096, 16);
  const rand = rng(30);
  const ref = Buffer.alloc(vol.size);
  await fill(vol, ref, rand, 20, MAX_SECTORS);
  await vol.failMember(0, 'test');
  await fill(vol, ref, rand, 10, MAX_SECTORS);
  t.ok((await readAll(vol)).equals(ref), 'degraded reads right before the tear');
  faults[2].inject({ ops: ['write'], tornAt: 777 });
  const off = 3 * vol.g.stripeData + 100;
  const data = randomBytes(rand, 2 * vol.g.stripeData);
  await rejectsWith(t, () => vol.write(off, data), 'EIO', 'array prop: offline', 'the torn write is not acknowledged');
  t.ok(vol.offline, 'offline after the second failure');
  await rejectsWith(t, () => vol.read(0, Buffer.alloc(4096)), 'EIO', 'array prop: offline', 'reads fail loudly instead of returning torn data');
  t.equal(logs.filter((l) => l.includes('OFFLINE')).length, 1, 'one offline log line');
  await vol.close();
  // Forced back up from the survivors: every stripe the failed request did not touch is intact.
  faults[2].clear();
  const again = await reassembled(faults, { force: true, skip: 0 });
  const sd = vol.g.stripeData;
  const lo = Math.floor(off / sd) * sd;
  const hi = Math.ceil((off + data.length) / sd) * sd;
  t.ok(again.data.subarray(0, lo).equals(ref.subarray(0, lo)), 'stripes before the failed request intact');
  t.ok(again.data.subarray(hi).equals(ref.subarray(hi)), 'stripes after the failed request intact');
});

t.test('EIO on flush: with redundancy the member is failed and the flush succeeds; without, the flush fails', async (t) => {
  const { vol, faults, failed } = await faultyArray(4, 4096, 8, { trackClean: false });
  const rand = rng(40);
  const ref = Buffer.alloc(vol.size);
  await fill(vol, ref, rand, 10, MAX_SECTORS);
  faults[1].inject({ ops: ['flush'] });
  await vol.flush();
  t.same(failed, [1], 'the member whose flush failed is failed');
  t.equal(vol.slots[1].state, 'faulty');
  t.notOk(vol.offline, 'still online, degraded');
  t.ok((await readAll(vol)).equals(ref), 'data intact');
  await fill(vol, ref, rand, 5, MAX_SECTORS);
  faults[3].inject({ ops: ['flush'] });
  await rejectsWith(t, () => vol.flush(), 'EIO', 'array prop: offline', 'a flush that loses the last redundancy fails');
  t.ok(vol.offline, 'offline');
  await vol.close();
});

t.test('EIO on flush through NBD: the FLUSH reply carries the error once no redundancy remains', async (t) => {
  const { vol, faults } = await faultyArray(3, 4096, 8, { trackClean: false });
  const { addr } = await startServer(t, [{ name: 'vol', device: vol }], { unix: true });
  const client = await NbdClient.connect({ ...addr, exportName: 'vol' });
  t.teardown(() => client.close());
  await client.write(0, Buffer.alloc(8192, 5));
  faults[0].inject({ ops: ['flush'] });
  await client.flush();
  t.equal(vol.slots[0].state, 'faulty', 'first flush EIO: member failed, FLUSH acknowledged (parity still covers it)');
  await client.write(4096, Buffer.alloc(4096, 6));
  faults[2].inject({ ops: ['flush'] });
  await rejectsWith(t, () => client.flush(), 'EIO', '', 'second flush EIO: the FLUSH reply is an error');
});

t.test('ENOSPC on a member fails that member cleanly; data intact; it stays out after re-assembly', async (t) => {
  const { vol, faults, failed, logs } = await faultyArray(5, 4096, 16);
  const rand = rng(50);
  const ref = Buffer.alloc(vol.size);
  await fill(vol, ref, rand, 10, MAX_SECTORS);
  faults[2].inject({ ops: ['write', 'zero'], code: 'ENOSPC' });
  await fill(vol, ref, rand, 20, MAX_SECTORS);
  await vol.writeZeroes(0, vol.g.stripeData * 2);
  ref.fill(0, 0, vol.g.stripeData * 2);
  t.same(failed, [2], 'member 2 failed once');
  t.ok(logs.some((l) => l.includes('member 2') && l.includes('faulty')), 'logged');
  t.ok((await readAll(vol)).equals(ref), 'every write reads back');
  await vol.close();
  const again = await reassembled(faults);
  t.same(again.missing, [2]);
  t.ok(again.data.equals(ref), 're-assembled volume holds every acknowledged write');
});

t.test('a slow member delays only what touches it, fails nothing, loses nothing', async (t) => {
  const { vol, faults, failed } = await faultyArray(4, 4096, 8);
  const rand = rng(60);
  const ref = Buffer.alloc(vol.size);
  await fill(vol, ref, rand, 10, MAX_SECTORS);
  let release!: () => void;
  faults[1].inject({ ops: ['write'], delay: new Promise<void>((r) => { release = r; }), times: 1 });
  t.equal(vol.g.dataDisk(0, 1), 1, 'stripe 0, chunk 1 is on slot 1');
  const data = randomBytes(rand, 4096);
  let acked = false;
  const pending = vol.write(4096, data).then(() => { acked = true; });
  const other = Buffer.alloc(4096);
  const at = vol.g.stripeData + 4096; // stripe 1, chunk 1: on slot 0
  t.equal(vol.g.dataDisk(1, 1), 0);
  await vol.read(at, other);
  t.ok(other.equals(ref.subarray(at, at + 4096)), 'a read elsewhere is served meanwhile');
  t.notOk(acked, 'the write held on the slow member is not acknowledged before it lands');
  release();
  await pending;
  data.copy(ref, 4096);
  t.same(failed, [], 'slowness is not failure');
  t.ok((await readAll(vol)).equals(ref), 'every write reads back');
  t.same(await vol.checkStripes(0, vol.g.stripes), [], 'parity right everywhere');
  await vol.close();
});

t.test('a delay in milliseconds holds a request and then runs it', async (t) => {
  const { vol, faults, failed } = await faultyArray(3, 4096, 4);
  faults[0].inject({ ops: ['read', 'write'], delay: 20, times: 4 });
  const data = Buffer.alloc(vol.g.stripeData, 9);
  await vol.write(0, data);
  t.ok((await readAll(vol)).subarray(0, data.length).equals(data));
  t.same(failed, []);
  await vol.close();
});
