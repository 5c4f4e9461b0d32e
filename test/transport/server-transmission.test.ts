// Transmission against a real server in each reply style (simple, structured, extended): every
// command, every errno of nbd-protocol.md's table, read-only and multiple exports, pipelining with
// replies out of order. After every error the next request on the same connection is served.
import t from 'tap';
import { NbdClient, type ConnectOptions } from '../../lib/transport/client.js';
import * as C from '../../lib/transport/constants.js';
import { FaultDevice } from '../../lib/transport/fault-device.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { seededBytes } from '../helpers/prng.js';
import { GatedDevice, memoryExport, shapedDevice, startServer, until } from './fixtures.js';

const MODES: [string, Partial<ConnectOptions>][] = [
  ['simple', { structured: false }],
  ['structured', { extended: false }],
  ['extended', {}],
];

const SIZE = 4 << 20;

function shaped(): MemoryDevice {
  return shapedDevice(SIZE, { minimum: 512, preferred: 4096, maximum: 1 << 20 }, { fastZero: false }) as MemoryDevice;
}

for (const [mode, opts] of MODES) {
  t.test(`commands, ${mode} replies`, async (t) => {
    const { addr } = await startServer(t, [memoryExport('m', SIZE)]);
    const c = await NbdClient.connect({ ...addr, exportName: 'm', ...opts });
    t.equal(c.structured, mode !== 'simple');
    t.equal(c.extended, mode === 'extended');
    const data = seededBytes(200_000, 1);
    await c.write(70_000, data, { fua: true });
    t.same(await c.read(70_000, data.length), data);
    const r = await c.request({ type: C.CMD_READ, offset: 0, length: 16 });
    t.same(r.kinds, [mode === 'simple' ? 'simple' : mode], 'READ reply style');
    await c.flush();
    await c.cache(0, 65536);
    await c.writeZeroes(70_000, 1000, { noHole: true });
    t.ok((await c.read(70_000, 1000)).every((b) => b === 0));
    await c.trim(0, 65536 * 3);
    t.ok((await c.read(70_000, 1000)).every((b) => b === 0), 'MemoryDevice trims to zeroes');
    await c.writeZeroes(1 << 20, 1 << 20, { fastZero: true });
    if (mode === 'simple') {
      t.equal((await c.request({ type: C.CMD_BLOCK_STATUS, offset: 0, length: 512 })).errno, C.NBD_EINVAL, 'no context');
    } else {
      const ext = await c.blockStatus(0, SIZE);
      t.same(ext, [{ length: 196608, flags: 3 }, { length: 131072, flags: 0 }, { length: SIZE - 327680, flags: 3 }]);
      t.same(await c.blockStatus(196608, SIZE - 196608, { reqOne: true }), [{ length: 131072, flags: 0 }], 'REQ_ONE: one extent');
      t.same(await c.blockStatus(196608, 4096, { reqOne: true }), [{ length: 4096, flags: 0 }], 'no longer than the request');
      const raw = await c.request({ type: C.CMD_BLOCK_STATUS, offset: 0, length: 4096 });
      t.same(raw.kinds, [mode]);
      t.equal((await c.read(0, 4096, { df: true })).length, 4096, 'DF read');
    }
    await c.disconnect();
  });

  t.test(`errno table, ${mode} replies`, async (t) => {
    const ro = new MemoryDevice(SIZE);
    const faulty = new FaultDevice(new MemoryDevice(SIZE));
    faulty.inject({ ops: ['read'], range: [0, 512], code: 'EIO' });
    faulty.inject({ ops: ['zero'], code: 'ENOTSUP' });
    const { addr } = await startServer(t, [
      { name: 's', device: shaped() }, { name: 'ro', device: ro, readOnly: true }, { name: 'f', device: faulty },
    ]);
    const c = await NbdClient.connect({ ...addr, exportName: 's', ...opts });
    const errno = async (req: Parameters<NbdClient['request']>[0]) => (await c.request(req)).errno;
    const cases: [string, Parameters<NbdClient['request']>[0], number][] = [
      ['write past the end', { type: C.CMD_WRITE, offset: SIZE - 512, payload: Buffer.alloc(1024) }, C.NBD_ENOSPC],
      ['write starting past the end', { type: C.CMD_WRITE, offset: SIZE + 512, payload: Buffer.alloc(512) }, C.NBD_ENOSPC],
      ['zeroes past the end', { type: C.CMD_WRITE_ZEROES, offset: SIZE, length: 512 }, C.NBD_ENOSPC],
      ['read past the end', { type: C.CMD_READ, offset: SIZE - 512, length: 1024 }, C.NBD_EINVAL],
      ['trim past the end', { type: C.CMD_TRIM, offset: SIZE, length: 512 }, C.NBD_EINVAL],
      ['cache past the end', { type: C.CMD_CACHE, offset: SIZE, length: 512 }, C.NBD_EINVAL],
      ['misaligned offset', { type: C.CMD_READ, offset: 100, length: 512 }, C.NBD_EINVAL],
      ['misaligned length', { type: C.CMD_WRITE, offset: 0, payload: Buffer.alloc(100) }, C.NBD_EINVAL],
      ['misaligned trim', { type: C.CMD_TRIM, offset: 512, length: 1000 }, C.NBD_EINVAL],
      ['zero-length read', { type: C.CMD_READ, offset: 0, length: 0 }, C.NBD_EINVAL],
      ['zero-length write', { type: C.CMD_WRITE, offset: 0, length: 0 }, C.NBD_EINVAL],
      ['unknown command', { type: 9, offset: 0, length: 512 }, C.NBD_EINVAL],
      ['unknown flag', { type: C.CMD_READ, flags: 0x40, offset: 0, length: 512 }, C.NBD_EINVAL],
      ['flag invalid for the command', { type: C.CMD_READ, flags: C.CMD_FLAG_REQ_ONE, offset: 0, length: 512 }, C.NBD_EINVAL],
      ['NO_HOLE on a write', { type: C.CMD_WRITE, flags: C.CMD_FLAG_NO_HOLE, offset: 0, payload: Buffer.alloc(512) }, C.NBD_EINVAL],
      ['FAST_ZERO not advertised', { type: C.CMD_WRITE_ZEROES, flags: C.CMD_FLAG_FAST_ZERO, offset: 0, length: 512 }, C.NBD_EINVAL],
      ['flush with a range', { type: C.CMD_FLUSH, offset: 512, length: 512 }, C.NBD_EINVAL],
      ['oversized read', { type: C.CMD_READ, offset: 0, length: 2 << 20 }, C.NBD_EOVERFLOW],
      ['oversized cache', { type: C.CMD_CACHE, offset: 0, length: 2 << 20 }, C.NBD_EOVERFLOW],
      ['oversized write (payload consumed)', { type: C.CMD_WRITE, offset: 0, payload: Buffer.alloc(2 << 20, 1) }, C.NBD_EINVAL],
    ];
    if (mode === 'simple') {
      cases.push(['DF without structured replies', { type: C.CMD_READ, flags: C.CMD_FLAG_DF, offset: 0, length: 512 }, C.NBD_EINVAL]);
      cases.push(['BLOCK_STATUS without a context', { type: C.CMD_BLOCK_STATUS, offset: 0, length: 512 }, C.NBD_EINVAL]);
    } else {
      cases.push(['oversized DF read', { type: C.CMD_READ, flags: C.CMD_FLAG_DF, offset: 0, length: 2 << 20 }, C.NBD_EOVERFLOW]);
      cases.push(['block status past the end', { type: C.CMD_BLOCK_STATUS, offset: SIZE, length: 512 }, C.NBD_EINVAL]);
    }
    if (mode === 'extended') {
      // With extended headers PAYLOAD_LEN announces a payload: it is consumed, then refused.
      cases.push(['PAYLOAD_LEN on a read', { type: C.CMD_READ, flags: C.CMD_FLAG_PAYLOAD_LEN, offset: 0, payload: Buffer.alloc(512, 3) }, C.NBD_EINVAL]);
    } else {
      cases.push(['PAYLOAD_LEN without extended headers', { type: C.CMD_READ, flags: C.CMD_FLAG_PAYLOAD_LEN, offset: 0, length: 512 }, C.NBD_EINVAL]);
    }
    const marker = seededBytes(512, 9);
    await c.write(4096, marker);
    for (const [what, req, want] of cases) {
      t.equal(await errno(req), want, what);
      t.same(await c.read(4096, 512), marker, `served after: ${what}`);
    }
    await c.disconnect();

    const r = await NbdClient.connect({ ...addr, exportName: 'ro', ...opts });
    for (const type of [C.CMD_WRITE, C.CMD_TRIM, C.CMD_WRITE_ZEROES]) {
      const req = type === C.CMD_WRITE ? { type, offset: 0, payload: Buffer.alloc(512) } : { type, offset: 0, length: 512 };
      t.equal((await r.request(req)).errno, C.NBD_EPERM, `read-only: command ${type}`);
    }
    t.equal((await r.request({ type: C.CMD_WRITE, flags: C.CMD_FLAG_FUA, offset: 0, payload: Buffer.alloc(512) })).errno, C.NBD_EPERM);
    t.equal((await r.read(0, 512)).length, 512, 'reads still work');
    await r.disconnect();

    const f = await NbdClient.connect({ ...addr, exportName: 'f', ...opts });
    const eio = await f.request({ type: C.CMD_READ, offset: 0, length: 512 });
    t.equal(eio.errno, C.NBD_EIO, 'device EIO');
    if (mode !== 'simple') t.match(eio.message, /injected fault/, 'structured errors carry the message');
    t.equal((await f.request({ type: C.CMD_WRITE_ZEROES, flags: C.CMD_FLAG_FAST_ZERO, offset: 0, length: 512 })).errno, C.NBD_ENOTSUP);
    await t.rejects(f.read(0, 512), { code: 'EIO' }, 'the client maps errnos to codes');
    t.equal((await f.read(512, 512)).length, 512);
    await f.disconnect();
  });

  t.test(`pipelined requests answered out of order, ${mode} replies`, async (t) => {
    const gated = new GatedDevice(new MemoryDevice(SIZE));
    const { addr } = await startServer(t, [{ name: 'g', device: gated }]);
    const c = await NbdClient.connect({ ...addr, exportName: 'g', ...opts });
    const order: number[] = [];
    const reads = [0, 1, 2, 3].map((i) => c.read(i * 4096, 4096).then(() => order.push(i)));
    await until(() => gated.waiting.length === 4, 5000, 'four reads held');
    for (const i of [2, 0, 3, 1]) {
      gated.release(i * 4096);
      await until(() => order.length === [2, 0, 3, 1].indexOf(i) + 1, 5000, `reply ${i}`);
    }
    await Promise.all(reads);
    t.same(order, [2, 0, 3, 1], 'replies follow completion, not request order');
    gated.release();
    const writes = Array.from({ length: 64 }, (_, i) => c.write(i * 8192, seededBytes(8192, i)));
    const backs = await Promise.all(writes).then(() => Promise.all(Array.from({ length: 64 }, (_, i) => c.read(i * 8192, 8192))));
    t.ok(backs.every((b, i) => b.equals(seededBytes(8192, i))), '64 pipelined writes then 64 pipelined reads');
    await c.disconnect();
  });
}

t.test('several exports are independent; multi-conn sees FUA writes', async (t) => {
  const { addr } = await startServer(t, [memoryExport('a'), memoryExport('b')], { unix: true });
  const a = await NbdClient.connect({ ...addr, exportName: 'a' });
  const a2 = await NbdClient.connect({ ...addr, exportName: 'a' });
  const b = await NbdClient.connect({ ...addr, exportName: 'b' });
  t.ok(a.transmissionFlags & C.TFLAG_CAN_MULTI_CONN);
  await a.write(0, Buffer.from('AAAA'), { fua: true });
  t.equal((await a2.read(0, 4)).toString(), 'AAAA', 'visible on another connection after the FUA reply');
  t.same(await b.read(0, 4), Buffer.alloc(4), 'other export untouched');
  await Promise.all([a.disconnect(), a2.disconnect(), b.disconnect()]);
});

t.test('DISC: in-flight requests finish, then the server closes', async (t) => {
  const gated = new GatedDevice(new MemoryDevice(SIZE));
  const { addr, server } = await startServer(t, [{ name: 'g', device: gated }]);
  const c = await NbdClient.connect({ ...addr, exportName: 'g' });
  const read = c.read(0, 4096);
  await until(() => gated.waiting.length === 1);
  const disc = c.disconnect();
  gated.release();
  t.equal((await read).length, 4096);
  await disc;
  await until(() => server.connectionCount === 0, 5000, 'connection closed');
});
