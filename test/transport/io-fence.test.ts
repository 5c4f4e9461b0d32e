// IoFence over a memory device: requests wait while held and run in order once opened; sealed,
// nothing more reaches the device; close always goes through; beforePass may move the fence first.
import t from 'tap';
import { IoFence } from '../../lib/transport/io-fence.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';

t.test('held requests wait, then run; sealed ones never reach the device', async (t) => {
  const mem = new MemoryDevice(1 << 20);
  const fence = new IoFence();
  const dev = fence.wrap(mem);
  await dev.write(0, Buffer.alloc(4096, 1));
  fence.hold();
  let done = false;
  const w = dev.write(0, Buffer.alloc(4096, 2)).then(() => { done = true; });
  await new Promise((r) => setImmediate(r));
  t.notOk(done, 'a write waits while held');
  t.equal(fence.waiting, 1, 'counted as waiting');
  const seen = Buffer.alloc(4096);
  await mem.read(0, seen);
  t.equal(seen[0], 1, 'the device still has the old bytes');
  fence.open();
  await w;
  await mem.read(0, seen);
  t.equal(seen[0], 2, 'the write ran once opened');
  t.equal(fence.waiting, 0);

  fence.hold();
  let late = false;
  void dev.write(0, Buffer.alloc(4096, 3)).then(() => { late = true; });
  fence.seal();
  fence.open(); // no way back from sealed
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(late, 'a write held when sealed never runs');
  let after = false;
  void dev.flush().then(() => { after = true; });
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(after, 'nothing passes a sealed fence');
  await mem.read(0, seen);
  t.equal(seen[0], 2, 'the device never saw the sealed write');
  await dev.close();
  t.pass('close goes through a sealed fence');
});

t.test('beforePass runs before each request and may hold the fence first', async (t) => {
  const fence = new IoFence();
  const dev = fence.wrap(new MemoryDevice(1 << 16));
  let calls = 0;
  fence.beforePass = () => { calls++; if (calls === 2) fence.hold(); };
  await dev.read(0, Buffer.alloc(512));
  let second = false;
  void dev.read(0, Buffer.alloc(512)).then(() => { second = true; });
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(second, 'the request that found the fence moved waits');
  fence.open();
  await new Promise((r) => setTimeout(r, 20));
  t.ok(second, 'and runs once opened');
});
