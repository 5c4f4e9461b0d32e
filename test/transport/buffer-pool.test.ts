// READ reply and WRITE payload buffers come from a bounded pool; a reply's goes back only once its
// socket write has completed, a payload's once its request is answered: the pool's own rules, then
// through real connections (a client that stops reading its replies while another reads the same
// sizes; nbdcopy uploading and downloading with many large requests in flight).
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { BufferPool, HEADROOM } from '../../lib/transport/buffer-pool.js';
import { NbdClient } from '../../lib/transport/client.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { waitUntil, withDeadline } from '../helpers/deadline.js';
import { seededBytes } from '../helpers/prng.js';
import { runTool } from '../../harness/run-tool.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';
import { GatedDevice, startServer } from './fixtures.js';

const MiB = 1 << 20;

/** A memory device holding random bytes, and a copy of them to compare against. */
async function randomDevice(size: number): Promise<{ device: MemoryDevice; content: Buffer }> {
  const device = new MemoryDevice(size);
  const content = crypto.randomBytes(size);
  await device.write(0, content);
  return { device, content };
}

t.test('the pool: classes, reuse, foreign and double give-backs, the idle bound', async (t) => {
  const pool = new BufferPool(3 * (HEADROOM + MiB));
  const a = pool.take(MiB);
  t.equal(a.length, HEADROOM + MiB, 'a 1 MiB request gets the 1 MiB class plus headroom');
  t.equal(pool.take(4096 + 1).length, HEADROOM + 8192, 'sizes round up to a power of two');
  t.equal(pool.take(100).length, HEADROOM + 4096, 'the smallest class is 4 KiB');
  const b = pool.take(MiB);
  t.not(a, b, 'a buffer handed out is not handed out again');
  pool.give(a);
  t.equal(pool.take(MiB), a, 'a given-back buffer is reused');
  pool.give(a);
  pool.give(a);
  t.equal(pool.stats.idleBytes, a.length, 'a second give-back of the same buffer is ignored');
  const c = pool.take(MiB);
  const d = pool.take(MiB);
  t.equal(c, a, 'the idle buffer is reused once');
  t.not(d, a, 'and not twice');
  pool.give(Buffer.allocUnsafe(HEADROOM + MiB));
  t.equal(pool.stats.idleBytes, 0, 'a buffer the pool did not hand out is ignored');
  const many = Array.from({ length: 6 }, () => pool.take(MiB));
  for (const x of [b, c, d, ...many]) pool.give(x);
  t.equal(pool.stats.outstanding, 2, 'only the two small buffers are still out');
  t.ok(pool.stats.idleBytes <= pool.maxIdleBytes, `idle ${pool.stats.idleBytes} <= ${pool.maxIdleBytes}`);
  t.equal(pool.stats.idleBytes, 3 * (HEADROOM + MiB), 'the pool keeps up to its bound');
  t.equal(pool.stats.dropped, 6, 'the rest is left to the collector');
});

t.test('a reply not yet written keeps its buffer while other connections read the same sizes', async (t) => {
  const SIZE = 64 * MiB;
  const READ = 2 * MiB;
  const { device, content } = await randomDevice(SIZE);
  const { server, addr } = await startServer(t, [{ name: 'm', device }], { unix: true });
  const stalled = await NbdClient.connect({ ...addr, exportName: 'm' });
  const other = await NbdClient.connect({ ...addr, exportName: 'm' });
  const socket = (stalled as unknown as { channel: { socket: net.Socket } }).channel.socket;
  socket.pause();
  // The stalled client asks for the first half; its replies pile up unsent in the server.
  const COUNT = 12;
  const held = Array.from({ length: COUNT }, (_, i) => stalled.read(i * READ, READ));
  const pool = server.buffers;
  await waitUntil(() => server.stats.peakUnsentBytes >= 8 * READ, 20_000, 'replies held unsent by the server');
  const outstanding = pool.stats.outstanding;
  t.ok(outstanding >= 8, `the unsent replies hold their buffers (${outstanding} out)`);
  // Meanwhile the other client reads the second half, the same sizes, many times over.
  for (let round = 0; round < 4; round++) {
    const offsets = Array.from({ length: COUNT }, (_, i) => SIZE / 2 + i * READ);
    const got = await withDeadline(Promise.all(offsets.map((o) => other.read(o, READ))), 20_000, 'the other client\'s reads');
    got.forEach((g, i) => {
      if (!g.equals(content.subarray(offsets[i], offsets[i] + READ))) t.fail(`round ${round}: read at ${offsets[i]} differs`);
    });
  }
  t.ok(pool.stats.outstanding >= outstanding, `the stalled replies still hold their ${outstanding} buffers (${pool.stats.outstanding} out)`);
  t.ok(pool.stats.reused > 0, `the other client's replies reused buffers (${pool.stats.reused} reuses)`);
  socket.resume();
  const back = await withDeadline(Promise.all(held), 20_000, 'the stalled client\'s replies');
  back.forEach((b, i) => t.ok(b.equals(content.subarray(i * READ, (i + 1) * READ)), `stalled read ${i} arrived intact`));
  await stalled.disconnect();
  await other.disconnect();
  await waitUntil(() => pool.stats.outstanding === 0, 10_000, 'every reply buffer back in the pool');
  t.ok(pool.stats.idleBytes <= pool.maxIdleBytes, `idle ${pool.stats.idleBytes} within the bound`);
});

t.test('a write held by the device keeps its payload buffer while other writes of the same size come and go', async (t) => {
  const SIZE = 64 * MiB;
  const LEN = 2 * MiB;
  const gated = new GatedDevice(new MemoryDevice(SIZE));
  const { server, addr } = await startServer(t, [{ name: 'g', device: gated }], { unix: true });
  const first = await NbdClient.connect({ ...addr, exportName: 'g' });
  const other = await NbdClient.connect({ ...addr, exportName: 'g' });
  const held = seededBytes(LEN, 1);
  const heldWrite = first.write(0, held);
  await waitUntil(() => gated.waiting.includes(0), 20_000, 'the first write held by the device');
  const pool = server.buffers;
  const reusedBefore = pool.stats.reused;
  for (let i = 1; i <= 12; i++) {
    const offset = i * LEN;
    const w = other.write(offset, seededBytes(LEN, 100 + i));
    await waitUntil(() => gated.waiting.includes(offset), 20_000, `write ${i} held by the device`);
    gated.release(offset);
    await withDeadline(w, 20_000, `write ${i}`);
  }
  t.ok(pool.stats.reused > reusedBefore, `the other writes reused payload buffers (${pool.stats.reused - reusedBefore})`);
  gated.release(0);
  await withDeadline(heldWrite, 20_000, 'the held write');
  const back = Buffer.alloc(LEN);
  await gated.inner.read(0, back);
  t.ok(back.equals(held), 'the held write stored its own payload');
  for (let i = 1; i <= 12; i++) {
    await gated.inner.read(i * LEN, back);
    if (!back.equals(seededBytes(LEN, 100 + i))) t.fail(`write ${i} stored something else`);
  }
  await first.disconnect();
  await other.disconnect();
});

t.test('nbdcopy with many large writes, then reads, in flight over several connections moves every byte', async (t) => {
  const SIZE = 128 * MiB;
  const device = new MemoryDevice(SIZE);
  const bound = 16 * MiB; // smaller than what is in flight: buffers are both reused and dropped
  const { server, addr } = await startServer(t, [{ name: 'm', device }], { unix: true, bufferPoolBytes: bound });
  const dir = tempDir(t, 'nbdraid-buffer-pool-');
  const uri = `nbd+unix:///m?socket=${(addr as { path: string }).path}`;
  const pool = server.buffers;
  const nbdcopy = (requestSize: number, from: string, to: string) =>
    runTool('nbdcopy', ['--connections=4', '--requests=16', `--request-size=${requestSize}`, '--flush', from, to], { timeoutMs: 120_000 });
  for (const [k, requestSize] of [4 * MiB, 2 * MiB, 64 * 1024].entries()) {
    const content = seededBytes(SIZE, k + 1);
    const source = path.join(dir, 'source.img');
    fs.writeFileSync(source, content);
    const reusedBefore = pool.stats.reused;
    await nbdcopy(requestSize, source, uri);
    const stored = Buffer.alloc(SIZE);
    await device.read(0, stored);
    t.ok(stored.equals(content), `request size ${requestSize}: the export holds what was uploaded`);
    t.ok(pool.stats.reused > reusedBefore, `request size ${requestSize}: payload buffers were reused (${pool.stats.reused - reusedBefore})`);
    const out = sparseImage(dir, 'copy.img', SIZE);
    await nbdcopy(requestSize, uri, out);
    t.ok(fs.readFileSync(out).equals(content), `request size ${requestSize}: the download equals the export`);
  }
  await waitUntil(() => pool.stats.outstanding === 0, 10_000, 'every buffer back in the pool');
  t.ok(pool.stats.peakIdleBytes <= bound, `idle peak ${pool.stats.peakIdleBytes} <= ${bound}`);
});
