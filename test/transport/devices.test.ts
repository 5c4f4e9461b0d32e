import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { FileDevice } from '../../lib/transport/file-device.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { FaultDevice } from '../../lib/transport/fault-device.js';
import { STATE_HOLE, STATE_ZERO, type BlockDevice } from '../../lib/transport/block-device.js';
import { NbdraidError } from '../../lib/errors.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-dev-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

async function roundTrip(t: Test, dev: BlockDevice): Promise<void> {
  const data = randomBytes(200_000);
  await dev.write(12_345, data);
  const back = Buffer.alloc(data.length);
  await dev.read(12_345, back);
  t.ok(back.equals(data), 'read returns what was written');
  await dev.writeZeroes(12_345 + 1000, 70_000);
  await dev.read(12_345, back);
  t.ok(back.subarray(1000, 71_000).equals(Buffer.alloc(70_000)), 'zeroed range reads zero');
  t.ok(back.subarray(71_000).equals(data.subarray(71_000)), 'bytes after the zeroed range untouched');
  t.ok(back.subarray(0, 1000).equals(data.subarray(0, 1000)), 'bytes before the zeroed range untouched');
}

t.test('FileDevice on a sparse file', async (t) => {
  const file = path.join(dir, 'a.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, 64 << 20);
  const dev = await FileDevice.open(file);
  t.equal(dev.size, 64 << 20, 'size from seeking to the end');
  t.equal(dev.isBlockDevice, false);
  const before = await dev.blockStatus(0, 64 << 20);
  t.same(before, [{ length: 64 << 20, flags: STATE_HOLE | STATE_ZERO }], 'an empty sparse file is one hole');
  await roundTrip(t, dev);
  const after = await dev.blockStatus(0, 64 << 20);
  t.equal(after[0].flags, STATE_HOLE | STATE_ZERO, 'the untouched first 12 KiB stay a hole');
  t.equal(after[0].length, 12_288);
  t.equal(after[1].flags, 0, 'written data is reported allocated');
  t.equal(after.reduce((s, e) => s + e.length, 0), 64 << 20, 'extents cover the range');
  await t.rejects(dev.writeZeroes(0, 4096, { fastZero: true }), { code: 'ENOTSUP' });
  await dev.flush();
  await dev.close();
});

t.test('FileDevice exclusive open refuses a second holder, read-only refuses writes', async (t) => {
  const file = path.join(dir, 'b.img');
  fs.writeFileSync(file, Buffer.alloc(1 << 20));
  const first = await FileDevice.open(file, { exclusive: true });
  await t.rejects(FileDevice.open(file, { exclusive: true }), { code: 'EBUSY' });
  await first.close();
  const again = await FileDevice.open(file, { exclusive: true });
  await again.close();
  const ro = await FileDevice.open(file, { readOnly: true });
  t.equal(ro.capabilities.readOnly, true);
  await t.rejects(ro.write(0, Buffer.alloc(10)), NbdraidError);
  await ro.close();
  await t.rejects(FileDevice.open(path.join(dir, 'missing.img')), { code: 'ENOENT' });
  await t.rejects(FileDevice.open(dir), { code: 'EINVAL' }, 'a directory is refused');
});

t.test('MemoryDevice', async (t) => {
  const dev = new MemoryDevice(8 << 20);
  await roundTrip(t, dev);
  const map = await dev.blockStatus(0, 8 << 20);
  t.equal(map.reduce((s, e) => s + e.length, 0), 8 << 20);
  t.equal(map[map.length - 1].flags, STATE_HOLE | STATE_ZERO, 'untouched tail is a hole');
});

t.test('FaultDevice injects errors by op, range and count', async (t) => {
  const inner = new MemoryDevice(1 << 20);
  const dev = new FaultDevice(inner, 'member 1');
  dev.inject({ ops: ['write'], range: [4096, 8192], after: 1, times: 2 });
  await dev.write(4096, Buffer.alloc(10)); // skipped by `after`
  await t.rejects(dev.write(4096, Buffer.alloc(10)), { code: 'EIO', message: /^member 1 write at 4096: injected fault/ });
  await t.rejects(dev.write(8000, Buffer.alloc(500)), { code: 'EIO' });
  await dev.write(4096, Buffer.alloc(10)); // times exhausted
  await dev.write(0, Buffer.alloc(10)); // outside the range
  await dev.read(4096, Buffer.alloc(10)); // other op
  t.equal(dev.counts.write, 5);
  dev.failAll();
  await t.rejects(dev.read(0, Buffer.alloc(1)), { code: 'EIO' });
  await t.rejects(dev.flush(), { code: 'EIO' });
  dev.clear();
  await dev.flush();
});
