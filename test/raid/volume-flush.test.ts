// FLUSH is about the volume, not the process (architecture invariant 9): a flush through any view
// of the members makes every write acknowledged before it durable, whoever wrote it, and a flush
// never replies before the member flushes it depends on have finished. Members here are disks
// with a volatile cache (PowerLossDevice): after a power loss only what was flushed is there.
import t from 'tap';
import { assembleArray } from '../../lib/raid/assemble.js';
import { RaidVolume } from '../../lib/raid/volume.js';
import { Disk, PowerLossDevice } from '../helpers/power-loss-device.js';
import { memoryArray } from './fixture.js';
import { randomBytes, rng } from '../helpers/prng.js';

async function twoViews() {
  const { devices } = await memoryArray(5, 16384, 'left-symmetric', 16);
  const disks = devices.map((d) => new Disk(d as never));
  const open = async () => {
    const views = disks.map((d) => new PowerLossDevice(d));
    const { meta } = await assembleArray(views.map((device) => ({ device })));
    return { views, vol: new RaidVolume(meta, { log: () => undefined, trackClean: false }) };
  };
  return { disks, a: await open(), b: await open() };
}

/** Reads [offset, offset + len) from a fresh assembly of the durable media alone. */
async function afterPowerLoss(disks: Disk[], offset: number, len: number): Promise<Buffer> {
  for (const d of disks) d.powerLoss();
  const { meta } = await assembleArray(disks.map((d) => ({ device: new PowerLossDevice(d) })));
  const vol = new RaidVolume(meta, { log: () => undefined, trackClean: false });
  const out = Buffer.alloc(len);
  await vol.read(offset, out);
  return out;
}

t.test('a flush through one view makes writes acknowledged through another durable', async (t) => {
  const { disks, a, b } = await twoViews();
  const data = randomBytes(rng(1), 65536);
  await b.vol.write(12345, data);
  await a.vol.flush();
  t.ok(disks.every((d) => d.flushes > 0), 'the flush reached every member');
  t.ok((await afterPowerLoss(disks, 12345, data.length)).equals(data), 'the write acknowledged through B survives a power loss after A flushed');
});

t.test('a flush arriving while another is in progress does not reply before the data is durable', async (t) => {
  const { disks, a } = await twoViews();
  const data = randomBytes(rng(2), 20000);
  await a.vol.write(4096, data);
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  for (const v of a.views) v.gate = gate;
  let firstDone = false;
  let secondDone = false;
  const first = a.vol.flush().then(() => { firstDone = true; });
  const second = a.vol.flush().then(() => { secondDone = true; });
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  // Nothing is durable while the member flushes are held: neither flush may have replied.
  t.notOk(firstDone, 'the first flush waits for its member flushes');
  t.notOk(secondDone, 'the second flush does not reply while the data is still volatile');
  open();
  await Promise.all([first, second]);
  t.ok((await afterPowerLoss(disks, 4096, data.length)).equals(data), 'durable once both replied');
});
