// One member failure policy for foreground and background I/O: a member that fails a check's
// read or a rebuild's write is failed (superblocks record it), exactly as when a client's request
// hits the error; the step still reports its error so the partition is retried.
import t from 'tap';
import { runStep } from '../../lib/controller/steps.js';
import { readSuperblock } from '../../lib/raid/metadata.js';
import { ROLE_FAULTY } from '../../lib/raid/superblock.js';
import { RaidVolume } from '../../lib/raid/volume.js';
import { FaultDevice } from '../../lib/transport/fault-device.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { memoryArray } from '../raid/fixture.js';

async function faultyVolume() {
  const fx = await memoryArray(4, 16384, 'left-symmetric', 16, (d, i) => new FaultDevice(d, `m${i}`));
  const failed: number[] = [];
  const vol = new RaidVolume(fx.meta, { log: () => undefined, cleanDelayMs: 10, onMemberFailed: (s) => failed.push(s) });
  return { faults: fx.devices as FaultDevice[], vol, failed };
}

t.test('a read error during check fails the member', async (t) => {
  const { faults, vol, failed } = await faultyVolume();
  faults[2].inject({ ops: ['read'] });
  await t.rejects(runStep(vol, 'check', null, 0, 4), /member 2/, 'the step reports the error');
  t.equal(vol.slots[2].state, 'faulty', 'member 2 is failed');
  t.same(failed, [2]);
  t.equal((await readSuperblock(faults[0].inner, 'm0')).devRoles[2], ROLE_FAULTY, 'the survivors record it');
  await vol.close();
});

t.test('a write error on the member being rebuilt fails that member, not the array', async (t) => {
  const { faults, vol, failed } = await faultyVolume();
  await vol.failMember(1, 'test');
  const spare = new FaultDevice(new MemoryDevice(faults[1].size), 'spare');
  await vol.addRebuildMember(1, spare, { path: 'spare' });
  spare.inject({ ops: ['write'], range: [vol.g.dataOffset, Infinity] });
  await t.rejects(runStep(vol, 'rebuild', { slot: 1, path: 'spare', deviceUuid: '' }, 0, 4), /member 1/);
  t.equal(vol.slots[1].state, 'faulty', 'the rebuilding member is failed');
  t.notOk(vol.offline, 'the array stays up, degraded');
  t.same(failed, [1, 1]);
  await vol.close();
});
