// NbdDevice (a BlockDevice over another server's export) against the in-process server on real
// sockets: NBD URIs parsed or refused, size and data through it (requests split above the
// server's maximum), server errors mapped to their codes without failing the device, and the
// failure policy: a timeout or a lost connection fails the device for good, fast.
import path from 'node:path';
import t from 'tap';
import type { NbdraidError } from '../../lib/errors.js';
import type { Address } from '../../lib/transport/client-handshake.js';
import { FaultDevice } from '../../lib/transport/fault-device.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { NbdDevice } from '../../lib/transport/nbd-device.js';
import { isNbdUri, parseNbdUri } from '../../lib/transport/nbd-uri.js';
import { loadServerTls } from '../../lib/transport/tls.js';
import { withDeadline } from '../helpers/deadline.js';
import { tempDir } from '../helpers/temp-dir.js';
import { makePskFile } from '../helpers/tls-pki.js';
import { GatedDevice, startServer } from './fixtures.js';

const MiB = 1 << 20;

function uriOf(addr: Address, name: string, scheme = 'nbd'): string {
  return 'path' in addr ? `${scheme}+unix:///${name}?socket=${addr.path}` : `${scheme}://${addr.host}:${addr.port}/${name}`;
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

t.test('NBD URIs: parsed into an address and export, or refused with one EINVAL line', async (tt) => {
  tt.same(parseNbdUri('nbd://10.1.2.3:10900/m%201'), { address: { host: '10.1.2.3', port: 10900 }, exportName: 'm 1', tls: null });
  tt.same(parseNbdUri('nbd://storage/m0').address, { host: 'storage', port: 10809 }, 'the default port is 10809');
  tt.same(parseNbdUri('nbd://[::1]:99/x').address, { host: '::1', port: 99 }, 'IPv6 hosts in brackets');
  tt.same(parseNbdUri('nbd+unix:///m0?socket=/run/m0.sock'), { address: { path: '/run/m0.sock' }, exportName: 'm0', tls: null });
  tt.same(parseNbdUri('nbds://h/e?tls-psk-file=/k&tls-username=ctl').tls, { certificates: undefined, pskFile: '/k', pskUsername: 'ctl' });
  tt.ok(isNbdUri('nbds+unix:///e?socket=/s') && !isNbdUri('/dev/sdb') && !isNbdUri('nbd-member.img'), 'isNbdUri tells URIs from paths');
  const refused: [string, RegExp][] = [
    ['nbd+unix:///m0', /needs \?socket=PATH/],
    ['nbd://h/e?sockett=/x', /unknown query parameter 'sockett'/],
    ['nbd://h/e?tls-psk-file=/k', /use nbds:\/\//],
    ['nbd://h/e?socket=/x', /belongs to nbd\+unix/],
    ['nbd://u:p@h/e', /passwords/],
    ['nbd+unix://host/e?socket=/s', /takes no host/],
  ];
  for (const [uri, why] of refused) {
    const err = (() => { try { parseNbdUri(uri); return null; } catch (e) { return e as NbdraidError; } })();
    tt.equal(err?.code, 'EINVAL', `${uri}: EINVAL`);
    tt.match(err?.message, new RegExp(`^member ${uri.replace(/[?+.*]/g, '\\$&')}: .*${why.source}`), `${uri}: ${err?.message}`);
  }
});

t.test('NbdDevice: size, data through it (split above the maximum), zeroes, flush, block status', async (tt) => {
  for (const unix of [false, true]) {
    const mem = new MemoryDevice(96 * MiB);
    const { addr } = await startServer(tt, [{ name: 'm0', device: mem }], { unix });
    const dev = await NbdDevice.open(uriOf(addr, 'm0'));
    tt.teardown(() => dev.close());
    tt.equal(dev.size, 96 * MiB, `${unix ? 'unix' : 'tcp'}: size from the handshake`);
    tt.ok(dev.capabilities.multiConn && !dev.capabilities.readOnly, 'multi-conn and writable, as the server says');
    const big = pattern(40 * MiB, unix ? 7 : 3); // more than the server's 32 MiB maximum request
    await dev.write(4096, big, { fua: true });
    const back = Buffer.alloc(big.length, 0xa5); // old bytes: every one must be replaced by the server's
    await dev.read(4096, back);
    tt.ok(back.equals(big), 'a 40 MiB write and read, split into requests the server accepts, round-trip (read straight into the buffer given)');
    const direct = Buffer.alloc(big.length);
    await mem.read(4096, direct);
    tt.ok(direct.equals(big), 'the bytes are on the server\'s device');
    await dev.writeZeroes(8192, 65536);
    const z = Buffer.alloc(65536, 1);
    await dev.read(8192, z);
    tt.ok(z.equals(Buffer.alloc(65536)), 'write zeroes reads back as zeroes');
    await dev.flush();
    const ext = await dev.blockStatus(80 * MiB, MiB);
    tt.ok(ext.length > 0 && ext.reduce((a, e) => a + e.length, 0) <= MiB, 'block status covers a prefix of the range');
    await dev.close();
    tt.equal(dev.failure, null, 'a clean close is no failure');
  }
});

t.test('NbdDevice: a server error fails that request with its code; the device goes on', async (tt) => {
  const faulty = new FaultDevice(new MemoryDevice(4 * MiB));
  faulty.inject({ ops: ['write'], range: [MiB, 2 * MiB], code: 'ENOSPC', times: 1 });
  faulty.inject({ ops: ['read'], range: [2 * MiB, 3 * MiB], code: 'EIO', times: 1 });
  const { addr } = await startServer(tt, [{ name: 'd', device: faulty }]);
  const dev = await NbdDevice.open(uriOf(addr, 'd'));
  tt.teardown(() => dev.close());
  await tt.rejects(dev.write(MiB, Buffer.alloc(4096)), { code: 'ENOSPC' }, 'ENOSPC from the server is ENOSPC here');
  await tt.rejects(dev.read(2 * MiB, Buffer.alloc(4096)), { code: 'EIO' }, 'EIO from the server is EIO here');
  await tt.rejects(dev.read(4 * MiB, Buffer.alloc(4096)), { code: 'EINVAL' }, 'a read past the end gets the server\'s EINVAL');
  tt.equal(dev.failure, null, 'error replies do not fail the device');
  await dev.write(MiB, pattern(4096, 1));
  const back = Buffer.alloc(4096);
  await dev.read(MiB, back);
  tt.ok(back.equals(pattern(4096, 1)), 'the next requests work');
});

t.test('NbdDevice: read-only exports, unknown exports and refused connections fail the open with one line', async (tt) => {
  const { addr } = await startServer(tt, [{ name: 'ro', device: new MemoryDevice(MiB), readOnly: true }]);
  await tt.rejects(NbdDevice.open(uriOf(addr, 'ro')), { code: 'EPERM', message: /exports it read-only/ }, 'opening a read-only export for writing: EPERM');
  const ro = await NbdDevice.open(uriOf(addr, 'ro'), { readOnly: true });
  tt.ok(ro.capabilities.readOnly, 'opened read-only it works');
  await ro.close();
  await tt.rejects(NbdDevice.open(uriOf(addr, 'nope')), { code: 'ENOENT', message: /^open nbd:\/\/127\.0\.0\.1:\d+\/nope: the server has no such export$/ }, 'an unknown export: the open fails naming the URI');
  const dir = tempDir(tt);
  const gone = `nbd+unix:///x?socket=${path.join(dir, 'none.sock')}`;
  await tt.rejects(withDeadline(NbdDevice.open(gone, { timeoutMs: 2000 }), 10_000, 'open of a missing socket'), { message: /^open nbd\+unix/ }, 'no server: the open fails');
});

t.test('NbdDevice: a request with no reply within the timeout fails the device; later requests fail at once', async (tt) => {
  const gated = new GatedDevice(new MemoryDevice(MiB));
  const { addr } = await startServer(tt, [{ name: 'g', device: gated }]);
  const dev = await NbdDevice.open(uriOf(addr, 'g'), { timeoutMs: 300 });
  tt.teardown(() => { gated.release(); return dev.close(); });
  await tt.rejects(withDeadline(dev.read(0, Buffer.alloc(512)), 10_000, 'the held read'), { code: 'ETIMEDOUT', message: /no reply within 300 ms/ });
  tt.match(dev.failure?.message, /connection lost .*not reconnected/, 'the device records why it failed');
  await tt.rejects(withDeadline(dev.write(0, Buffer.alloc(512)), 1000, 'a write after the failure'), { code: 'EIO' }, 'a later write fails with EIO without waiting');
  gated.release();
  await tt.rejects(dev.flush(), { code: 'EIO' }, 'and stays failed: no reconnect');
});

t.test('NbdDevice: the connection dropping fails the requests in flight and the device', async (tt) => {
  const gated = new GatedDevice(new MemoryDevice(MiB));
  const { server, addr } = await startServer(tt, [{ name: 'g', device: gated }], { unix: true, shutdownGraceMs: 50 });
  const dev = await NbdDevice.open(uriOf(addr, 'g'));
  tt.teardown(() => dev.close());
  const inflight = dev.write(0, Buffer.alloc(4096, 9));
  await withDeadline(new Promise<void>((r) => { const i = setInterval(() => { if (gated.waiting.length) { clearInterval(i); r(); } }, 5); }), 10_000, 'the write to reach the server');
  const closing = server.close();
  await tt.rejects(withDeadline(inflight, 10_000, 'the write in flight'), { code: 'EIO' }, 'the write in flight fails with EIO');
  gated.release();
  await closing;
  tt.ok(dev.failure, `the device is failed (${dev.failure?.message})`);
  await tt.rejects(dev.read(0, Buffer.alloc(512)), { code: 'EIO' }, 'later requests fail with EIO');
});

t.test('NbdDevice over nbds+unix://: STARTTLS with a PSK from the URI; a plain URI is refused by a TLS-only server', async (tt) => {
  const dir = tempDir(tt);
  const keys = makePskFile(path.join(dir, 'keys.psk'), ['ctl']);
  const mem = new MemoryDevice(MiB);
  const { addr } = await startServer(tt, [{ name: 's', device: mem }], { unix: true, tls: loadServerTls({ mode: 'require', pskFile: keys }) });
  const dev = await NbdDevice.open(`${uriOf(addr, 's', 'nbds')}&tls-psk-file=${keys}&tls-username=ctl`);
  await dev.write(0, pattern(8192, 5));
  await dev.close();
  const direct = Buffer.alloc(8192);
  await mem.read(0, direct);
  tt.ok(direct.equals(pattern(8192, 5)), 'data written over TLS reached the device');
  await tt.rejects(NbdDevice.open(uriOf(addr, 's')), { code: 'EPERM', message: /^open nbd\+unix.*requires TLS/ }, 'plain nbd+unix:// to a TLS-only server fails the open');
});
