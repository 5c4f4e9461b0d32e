// Bounds and failure isolation: the in-flight bound under a flood of 32 MiB writes (checked with the
// server's own counters), oversized payloads skipped or refused, bad magic, graceful shutdown.
import net from 'node:net';
import t from 'tap';
import { encodeRequest } from '../../lib/transport/codec-transmission.js';
import { ClientHandshake } from '../../lib/transport/client-handshake.js';
import { NbdClient } from '../../lib/transport/client.js';
import * as C from '../../lib/transport/constants.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { settled } from '../helpers/deadline.js';
import { GatedDevice, SinkDevice, memoryExport, startServer, until } from './fixtures.js';

const MiB = 1 << 20;

t.test('a flood of 32 MiB writes stays within the in-flight bound', async (t) => {
  const sink = new SinkDevice(1 << 30);
  const gated = new GatedDevice(sink);
  const { server, addr } = await startServer(t, [{ name: 's', device: gated }], { maxInflightBytes: 64 * MiB, unix: true });
  const c = await NbdClient.connect({ ...addr, exportName: 's' });
  const payload = Buffer.alloc(32 * MiB, 0x5a);
  const COUNT = 10;
  const writes = Array.from({ length: COUNT }, (_, i) => c.write(i * 32 * MiB, payload));
  await until(() => gated.waiting.length === 2, 20_000, 'two writes held by the device');
  // Wait until the client can push no more (its socket stuck: bytes queued, none leaving), so
  // that the server has had every byte it could read: it must not have admitted a third write.
  const sock = (c as unknown as { channel: { socket: net.Socket } }).channel.socket;
  const stuck = await settled(() => [sock.bytesWritten, sock.writableLength > 0, gated.waiting.length], 20_000, 'the client socket blocking');
  t.equal(stuck[1], true, 'the client is blocked with writes still queued');
  t.equal(gated.waiting.length, 2, 'no third write admitted while 64 MiB are in flight');
  t.ok(server.stats.peakBufferedBytes <= 32 * MiB + 32 + 256 * 1024, `buffered peak ${server.stats.peakBufferedBytes}`);
  gated.release();
  await Promise.all(writes);
  t.equal(sink.bytesWritten, COUNT * 32 * MiB, 'every write reached the device');
  t.ok(server.stats.peakInflightBytes <= 64 * MiB + 32 * MiB, `in-flight peak ${server.stats.peakInflightBytes}`);
  t.ok(server.stats.peakInflightBytes >= 64 * MiB, 'the bound was reached');
  await c.disconnect();
});

t.test('large WRITE payloads are read straight into their own buffer, over TCP and unix sockets', async (t) => {
  for (const unix of [false, true]) {
    const device = new MemoryDevice(32 * MiB);
    const { server, addr } = await startServer(t, [{ name: 'm', device }], { unix });
    const c = await NbdClient.connect({ ...addr, exportName: 'm' });
    const data = Buffer.alloc(16 * MiB);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    // Misaligned offsets and sizes so that payloads start mid-read, after a header.
    await Promise.all([0, 1, 2, 3].map((k) => c.write(k * 4 * MiB + 7, data.subarray(k * 4 * MiB, (k + 1) * 4 * MiB - 13))));
    const back = await c.read(7, 16 * MiB - 13);
    for (let k = 0; k < 4; k++) {
      const got = back.subarray(k * 4 * MiB, (k + 1) * 4 * MiB - 13);
      t.ok(got.equals(data.subarray(k * 4 * MiB, (k + 1) * 4 * MiB - 13)), `${unix ? 'unix' : 'tcp'}: payload ${k} intact`);
    }
    const total = 4 * (4 * MiB - 13);
    t.ok(server.stats.directReadBytes >= total * 0.9, `${unix ? 'unix' : 'tcp'}: ${server.stats.directReadBytes} of ${total} payload bytes read without a copy`);
    await c.disconnect();
  }
});

t.test('a client that does not read its replies stops being read', async (t) => {
  const { server, addr } = await startServer(t, [{ name: 's', device: new SinkDevice(1 << 30) }], { maxInflightBytes: 16 * MiB, unix: true });
  const c = await NbdClient.connect({ ...addr, exportName: 's' });
  const socket = (c as unknown as { channel: { socket: net.Socket } }).channel.socket;
  socket.pause();
  const COUNT = 200;
  const reads = Array.from({ length: COUNT }, (_, i) => c.read(i * MiB, MiB));
  await until(() => server.stats.peakUnsentBytes >= 15 * MiB, 20_000, 'replies backing up');
  // Until the server has stopped taking requests (and the client stopped sending them).
  await settled(() => [server.stats.requests, socket.bytesWritten], 20_000, 'the server to stop reading requests');
  t.ok(server.stats.requests < COUNT, `only ${server.stats.requests} of ${COUNT} requests read while replies back up`);
  t.ok(server.stats.peakUnsentBytes <= 17 * MiB + 4096, `unsent peak ${server.stats.peakUnsentBytes}`);
  socket.resume();
  t.equal((await Promise.all(reads)).length, COUNT, 'all served once the client reads again');
  await c.disconnect();
});

t.test('request-count bound', async (t) => {
  const gated = new GatedDevice(new MemoryDevice(MiB));
  const { server, addr } = await startServer(t, [{ name: 'g', device: gated }], { maxInflightRequests: 4 });
  const c = await NbdClient.connect({ ...addr, exportName: 'g' });
  const reads = Array.from({ length: 20 }, (_, i) => c.read(i * 512, 512));
  await until(() => gated.waiting.length === 4);
  // Until every request has left the client and the server has nothing more to dispatch.
  const sock = (c as unknown as { channel: { socket: net.Socket } }).channel.socket;
  await settled(() => [sock.bytesWritten, sock.writableLength, gated.waiting.length, server.stats.requests], 20_000, 'requests to stop arriving');
  t.equal(sock.writableLength, 0, 'all 20 requests sent');
  t.equal(gated.waiting.length, 4, 'at most 4 requests reach the device');
  gated.release();
  t.equal((await Promise.all(reads)).length, 20);
  t.equal(server.stats.peakInflightRequests, 4);
  await c.disconnect();
});

t.test('oversized WRITE payloads: skipped to stay in sync, or beyond the cap, disconnect', async (t) => {
  const small = new MemoryDevice(8 * MiB);
  Object.defineProperty(small, 'blockSizes', { value: { minimum: 1, preferred: 4096, maximum: MiB } });
  const { server, addr } = await startServer(t, [{ name: 'm', device: small }], { maxDiscard: 4 * MiB });
  const c = await NbdClient.connect({ ...addr, exportName: 'm' });
  await c.write(0, Buffer.from('kept'));
  const r = await c.request({ type: C.CMD_WRITE, offset: 0, payload: Buffer.alloc(3 * MiB, 1) });
  t.equal(r.errno, C.NBD_EINVAL, 'over the maximum block size: refused after its payload was consumed');
  t.equal((await c.read(0, 4)).toString(), 'kept', 'in sync and untouched');
  const other = await NbdClient.connect({ ...addr, exportName: 'm' });
  await t.rejects(c.request({ type: C.CMD_WRITE, offset: 0, payload: Buffer.alloc(5 * MiB, 1) }), { code: 'EIO' }, 'over the discard cap: dropped');
  t.equal((await other.read(0, 4)).toString(), 'kept', 'another connection is not disturbed');
  t.ok(server.stats.protocolErrors >= 1);
  await other.disconnect();
});

t.test('bad request magic disconnects that client only', async (t) => {
  const { server, addr } = await startServer(t, [memoryExport('m')]);
  const good = await NbdClient.connect({ ...addr, exportName: 'm' });
  const hs = await ClientHandshake.open(addr);
  const bad = await hs.go('m');
  const closed = new Promise((r) => (bad as unknown as { channel: { socket: net.Socket } }).channel.socket.once('close', r));
  const req = encodeRequest({ flags: 0, type: C.CMD_READ, cookie: 1n, offset: 0, length: 512 }, false);
  req.writeUInt32BE(0xdeadbeef, 0);
  hs.sendRaw(req);
  await closed;
  t.equal(server.stats.protocolErrors, 1);
  await good.write(0, Buffer.from('fine'));
  t.equal((await good.read(0, 4)).toString(), 'fine');
  await good.disconnect();
});

t.test('graceful shutdown: in-flight requests finish, new ones get ESHUTDOWN, options ERR_SHUTDOWN', async (t) => {
  const gated = new GatedDevice(new MemoryDevice(MiB));
  const { server, addr } = await startServer(t, [{ name: 'g', device: gated }], { shutdownGraceMs: 5000 });
  await gated.inner.write(0, Buffer.from('durable'));
  const c = await NbdClient.connect({ ...addr, exportName: 'g' });
  const haggling = await ClientHandshake.open(addr);
  const slow = c.read(0, 7);
  await until(() => gated.waiting.length === 1);
  const closing = server.close();
  const late = await c.request({ type: C.CMD_WRITE, offset: 512, payload: Buffer.alloc(512) });
  t.equal(late.errno, C.NBD_ESHUTDOWN, 'a request arriving during shutdown');
  t.match(await haggling.option(C.OPT_GO, Buffer.from([0, 0, 0, 1, 0x67, 0, 0])), [{ type: C.REP_ERR_SHUTDOWN }]);
  t.match(await haggling.option(C.OPT_ABORT), [{ type: C.REP_ACK }], 'ABORT is still acknowledged');
  gated.release();
  t.equal((await slow).toString(), 'durable', 'the in-flight read completed');
  await closing;
  t.equal(server.connectionCount, 0);
  // The listener is closed: the connect itself is refused, not a handshake that fails later.
  await t.rejects(NbdClient.connect({ ...addr, exportName: 'g' }),
    { name: 'NbdraidError', code: 'EIO', message: /^connect 127\.0\.0\.1:\d+: connect ECONNREFUSED/, cause: { code: 'ECONNREFUSED' } },
    'no longer accepting');
});

t.test('shutdown drops connections that stay in the handshake after the grace period', async (t) => {
  const { server, addr } = await startServer(t, [memoryExport('m')], { shutdownGraceMs: 200 });
  const idle = await ClientHandshake.open(addr);
  await server.close();
  await t.rejects(idle.option(C.OPT_LIST), { code: 'EIO' });
});
