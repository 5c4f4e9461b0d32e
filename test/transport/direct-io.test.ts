// Background I/O with O_DIRECT on a FileDevice, against the real kernel: on a real file system
// the device opens a second descriptor with O_DIRECT (its /proc fdinfo flags say so) and
// background writes and reads of aligned pool buffers leave no pages in the page cache (fincore),
// which only I/O through that descriptor can do; what background I/O reads and writes equals
// buffered I/O, including unaligned requests and a short read at an unaligned end of file, and the
// two descriptors stay coherent. Where O_DIRECT is off or refused, background I/O is buffered, with
// no error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runTool } from '../../harness/run-tool.js';
import { safeTeardown } from '../../harness/cleanup.js';
import { AlignedPool, isAligned } from '../../lib/transport/aligned-pool.js';
import { directIoSetting } from '../../lib/transport/direct-io.js';
import { FileDevice } from '../../lib/transport/file-device.js';

const O_DIRECT = 0o40000;
const MIB = 1 << 20;
const pool = AlignedPool.create(8 * MIB) as AlignedPool;

async function fsType(dir: string): Promise<string> {
  return (await runTool('stat', ['-f', '-c', '%T', dir])).stdout.trim();
}

/** A scratch directory on the first candidate whose file system is of a kind that `want` accepts. */
async function dirOn(t: { teardown(fn: () => void): void }, candidates: string[], want: (type: string) => boolean): Promise<{ dir: string; type: string } | null> {
  for (const base of candidates) {
    if (!fs.existsSync(base)) continue;
    const type = await fsType(base);
    if (!want(type)) continue;
    const dir = fs.mkdtempSync(path.join(base, 'nbdraid-direct-'));
    safeTeardown(t, `remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
    return { dir, type };
  }
  return null;
}

/** Flags (octal, from /proc/self/fdinfo) of every descriptor of this process open on `file`. */
function fdFlags(file: string): number[] {
  const real = fs.realpathSync(file);
  const out: number[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile (the readdir's own descriptor)
    }
    if (target !== real) continue;
    const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (m) out.push(parseInt(m[1], 8));
  }
  return out;
}

/** Bytes of `file` in the page cache. */
async function cachedBytes(file: string): Promise<number> {
  return Number((await runTool('fincore', ['-b', '-n', '-o', 'RES', file])).stdout.trim());
}

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** An aligned pool buffer holding `data`. */
function alignedCopy(data: Buffer): Buffer {
  const b = pool.take(data.length);
  data.copy(b);
  return b;
}

t.test('the aligned pool hands out 4 KiB-aligned views, and plain buffers once it is full', async (t) => {
  const p = AlignedPool.create(128 * 1024) as AlignedPool;
  const a = p.take(64 * 1024);
  const b = p.take(40 * 1024);
  t.ok(isAligned(a) && a.byteOffset % 4096 === 0, 'first view aligned');
  t.equal(b.byteOffset % 4096, 0, 'second view starts on a 4 KiB boundary');
  t.notOk(isAligned(b.subarray(0, 1000)), 'an unaligned length is not aligned');
  const c = p.take(64 * 1024);
  t.notOk(isAligned(c), 'no room left: a plain buffer');
  t.same(p.stats, { aligned: 2, plain: 1, outstanding: 2 });
  p.give(a);
  p.give(c); // not the pool's: ignored
  const a2 = p.take(60 * 1024);
  t.equal(a2.byteOffset, a.byteOffset, 'a given-back buffer of the same class is reused');
  t.notOk(isAligned(Buffer.allocUnsafeSlow(MIB)), 'a Node buffer is never taken as aligned');
});

t.test('on a real file system background I/O goes through an O_DIRECT descriptor', async (t) => {
  const real = await dirOn(t, [os.tmpdir(), '/var/tmp', process.cwd()], (type) => type !== 'tmpfs' && type !== 'ramfs');
  if (!real) {
    t.skip('no directory on a disk-backed file system (only tmpfs) here: O_DIRECT cannot be exercised', () => {});
    return;
  }
  const file = path.join(real.dir, 'm');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, 4 * MIB); // sparse: nothing of it is cached
  const dev = await FileDevice.open(file);
  t.teardown(() => dev.close());
  t.equal(dev.backgroundMode, 'direct', `${real.type}: O_DIRECT taken at open`);
  const flags = fdFlags(file);
  t.equal(flags.length, 2, 'two descriptors on the file');
  t.equal(flags.filter((f) => (f & O_DIRECT) !== 0).length, 1, `exactly one has O_DIRECT (flags ${flags.map((f) => f.toString(8)).join(', ')})`);

  const data = pattern(2 * MIB, 7);
  const buf = alignedCopy(data);
  await dev.writeBackground(MIB, buf);
  t.equal(await cachedBytes(file), 0, 'a background write of an aligned buffer leaves nothing in the page cache');
  buf.fill(0);
  await dev.readBackground(MIB, buf);
  t.ok(buf.equals(data), 'read back in the background: the same bytes');
  t.equal(await cachedBytes(file), 0, 'and the background read cached nothing either');
  const plain = Buffer.alloc(2 * MIB);
  await dev.read(MIB, plain);
  t.ok(plain.equals(data), 'a buffered read sees what the direct write wrote');
  t.ok(await cachedBytes(file) >= 2 * MIB, 'buffered I/O does go through the page cache (the check above can fail)');
  pool.give(buf);
});

t.test('background I/O equals buffered I/O: unaligned requests, the unaligned end, both orders', async (t) => {
  const dirs = [await dirOn(t, [os.tmpdir(), '/var/tmp'], (type) => type !== 'tmpfs'), await dirOn(t, ['/dev/shm'], (type) => type === 'tmpfs')];
  if (!dirs[0]) t.skip('no disk-backed file system here', () => {});
  if (!dirs[1]) t.skip('no tmpfs at /dev/shm here', () => {});
  for (const where of dirs) {
    if (!where) continue;
    const size = 3 * MIB + 1000; // ends inside a 4 KiB block
    const file = path.join(where.dir, 'm');
    const model = pattern(size, 11);
    fs.writeFileSync(file, model);
    const dev = await FileDevice.open(file);
    t.comment(`${where.type}: background I/O ${dev.backgroundMode}`);
    try {
      // Reads: aligned, aligned but running past the end, unaligned offset, unaligned buffer.
      const tail = pool.take(8192);
      await dev.readBackground(3 * MIB, tail);
      t.ok(tail.equals(Buffer.concat([model.subarray(3 * MIB), Buffer.alloc(8192 - 1000)])), `${where.type}: read past the unaligned end: the data, then zeroes`);
      pool.give(tail);
      for (const [offset, len] of [[0, MIB], [4096 + 512, 64 * 1024], [MIB - 4096, 4096 * 3], [2 * MIB + 1, 300]]) {
        const a = pool.take(len);
        await dev.readBackground(offset, a);
        t.ok(a.equals(model.subarray(offset, offset + len)), `${where.type}: background read [${offset}, +${len}) equals the file`);
        pool.give(a);
        const p = Buffer.allocUnsafeSlow(len);
        await dev.readBackground(offset, p);
        t.ok(p.equals(model.subarray(offset, offset + len)), `${where.type}: ... and into a plain buffer`);
      }
      // Writes: aligned, unaligned offset, the unaligned last block; then each kind read back the other way.
      for (const [offset, len, seed] of [[MIB, 512 * 1024, 1], [4096 + 100, 8192, 2], [3 * MIB - 4096, 4096 + 1000, 3]]) {
        const data = pattern(len, 100 + seed);
        const a = alignedCopy(data);
        await dev.writeBackground(offset, a);
        pool.give(a);
        data.copy(model, offset);
        const back = Buffer.alloc(len);
        await dev.read(offset, back);
        t.ok(back.equals(data), `${where.type}: background write [${offset}, +${len}) read back buffered`);
      }
      // Coherence the other way: a buffered write (dirty in the cache), then a background read of it.
      const fresh = pattern(256 * 1024, 99);
      await dev.write(2 * MIB, fresh);
      fresh.copy(model, 2 * MIB);
      const seen = pool.take(256 * 1024);
      await dev.readBackground(2 * MIB, seen);
      t.ok(seen.equals(fresh), `${where.type}: a background read sees a buffered write not yet written back`);
      pool.give(seen);
      t.equal(dev.size, size, 'size unchanged');
      await dev.flush();
    } finally {
      await dev.close();
    }
    t.ok(fs.readFileSync(file).equals(model), `${where.type}: the file holds exactly what was written`);
  }
});

t.test('switched off, or refused at open: background I/O is buffered, without an error', async (t) => {
  const dir = await dirOn(t, [os.tmpdir(), '/var/tmp', '/dev/shm'], () => true);
  if (!dir) throw new Error('no scratch directory');
  const file = path.join(dir.dir, 'm');
  const model = pattern(MIB, 5);
  fs.writeFileSync(file, model);
  const refused = (): number => {
    throw Object.assign(new Error('EINVAL: invalid argument, open'), { code: 'EINVAL' });
  };
  for (const [label, opts, mode] of [
    ['directIo off', { directIo: 'off' as const }, 'buffered (disabled)'],
    ['the file system refuses O_DIRECT at open', { openDirect: refused }, 'buffered (unsupported)'],
  ] as const) {
    const dev = await FileDevice.open(file, opts);
    try {
      t.equal(dev.backgroundMode, mode, `${label}: ${mode}`);
      t.equal(fdFlags(file).filter((f) => (f & O_DIRECT) !== 0).length, 0, `${label}: no O_DIRECT descriptor`);
      const a = pool.take(MIB);
      await dev.readBackground(0, a);
      t.ok(a.equals(model), `${label}: background read works`);
      a.reverse();
      await dev.writeBackground(0, a);
      a.copy(model);
      pool.give(a);
      const back = Buffer.alloc(MIB);
      await dev.read(0, back);
      t.ok(back.equals(model), `${label}: background write works`);
    } finally {
      await dev.close();
    }
  }
  t.equal(directIoSetting('off'), 'off');
  t.equal(directIoSetting(undefined), 'auto');
  t.throws(() => directIoSetting('yes'), /must be on or off/, 'a misspelt NBDRAID_DIRECT_IO is an error, not a silent default');
});
