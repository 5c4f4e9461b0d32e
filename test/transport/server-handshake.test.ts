// Option haggling against a real server over TCP and unix sockets: every option path, errors,
// staying in sync after unsupported options, exact transmission flags, caps and timeouts.
import net from 'node:net';
import t from 'tap';
import { encodeClientFlags, encodeInfoRequest, encodeOption } from '../../lib/transport/codec-handshake.js';
import { ClientHandshake, OptionError } from '../../lib/transport/client-handshake.js';
import * as C from '../../lib/transport/constants.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { nextEvent, waitUntil, withDeadline } from '../helpers/deadline.js';
import { memoryExport, shapedDevice, startServer } from './fixtures.js';

const exports = () => [
  memoryExport('alpha', 1 << 20, { description: 'first disk' }),
  memoryExport('beta', 2 << 20, { readOnly: true }),
];

/** The NBD_REP_ERR_* an option call failed with (0 if it succeeded). */
function replyTypeOf(p: Promise<unknown>): Promise<number> {
  return p.then(() => 0, (e: OptionError) => e.replyType);
}

/** Resolves once the server has closed `hs` (an option fails); rejects if it answers or after 10 s. */
function closed(hs: ClientHandshake): Promise<void> {
  const probe = hs.option(C.OPT_LIST).then(() => { throw new Error('still open'); }, () => undefined);
  return withDeadline(probe, 10_000, 'the server closing the connection');
}

for (const unix of [false, true]) {
  t.test(`LIST, INFO and GO over ${unix ? 'a unix socket' : 'TCP'}`, async (t) => {
    const { addr } = await startServer(t, exports(), { unix });
    const hs = await ClientHandshake.open(addr);
    t.equal(hs.handshakeFlags, C.FLAG_FIXED_NEWSTYLE | C.FLAG_NO_ZEROES);
    t.same(await hs.list(), [{ name: 'alpha', description: 'first disk' }, { name: 'beta', description: '' }]);
    const info = await hs.info('alpha');
    t.same(info.find((i) => i.type === C.INFO_EXPORT), { type: 0, size: 1 << 20, transmissionFlags: 0xd6d });
    t.same(info.find((i) => i.type === C.INFO_BLOCK_SIZE), { type: 3, minimum: 1, preferred: 4096, maximum: 32 << 20 });
    t.same(info.find((i) => i.type === C.INFO_NAME), { type: 1, name: 'alpha' });
    t.same(info.find((i) => i.type === C.INFO_DESCRIPTION), { type: 2, description: 'first disk' });
    const bare = await hs.info('beta', [9999]);
    t.same(bare.map((i) => i.type).sort(), [0, 3], 'EXPORT and BLOCK_SIZE always; unknown info types ignored');
    t.equal(await replyTypeOf(hs.info('gamma')), C.REP_ERR_UNKNOWN);
    const client = await hs.go('', []);
    t.equal(client.size, 1 << 20, 'the empty name is the default (first) export');
    t.equal(client.transmissionFlags, 0xd6d, 'no DF without structured replies');
    await client.disconnect();
  });
}

t.test('exact transmission flags from capabilities', async (t) => {
  const noTrim = shapedDevice(1 << 20, { minimum: 512, preferred: 4096, maximum: 1 << 20 }, {
    trim: false, fua: false, multiConn: false, cache: false, rotational: true, fastZero: false,
  });
  const { addr } = await startServer(t, [{ name: 'x', device: noTrim }, memoryExport('ro', 1 << 20, { readOnly: true })]);
  const hs = await ClientHandshake.open(addr);
  await hs.structuredReply();
  const flags = async (name: string) => ((await hs.info(name)).find((i) => i.type === 0) as { transmissionFlags: number }).transmissionFlags;
  t.equal(await flags('x'), C.TFLAG_HAS_FLAGS | C.TFLAG_SEND_FLUSH | C.TFLAG_ROTATIONAL | C.TFLAG_SEND_WRITE_ZEROES | C.TFLAG_SEND_DF);
  t.equal(await flags('ro'), C.TFLAG_HAS_FLAGS | C.TFLAG_READ_ONLY | C.TFLAG_SEND_FLUSH | C.TFLAG_SEND_DF
    | C.TFLAG_CAN_MULTI_CONN | C.TFLAG_SEND_CACHE, 'read-only: no FUA, TRIM, WRITE_ZEROES, FAST_ZERO');
  hs.close();
});

t.test('STRUCTURED_REPLY, EXTENDED_HEADERS and their misuse', async (t) => {
  const { addr } = await startServer(t, exports());
  const hs = await ClientHandshake.open(addr);
  t.match(await hs.option(C.OPT_STRUCTURED_REPLY, Buffer.from('x')), [{ type: C.REP_ERR_INVALID }]);
  await hs.structuredReply();
  t.match(await hs.option(C.OPT_STRUCTURED_REPLY), [{ type: C.REP_ERR_INVALID }], 'twice');
  t.match(await hs.option(C.OPT_EXTENDED_HEADERS, Buffer.from('x')), [{ type: C.REP_ERR_INVALID }]);
  await hs.extendedHeaders();
  t.match(await hs.option(C.OPT_EXTENDED_HEADERS), [{ type: C.REP_ERR_INVALID }], 'twice');
  const client = await hs.go('alpha');
  t.ok(client.extended && client.structured);
  await client.disconnect();
});

t.test('LIST_META_CONTEXT and SET_META_CONTEXT', async (t) => {
  const { addr } = await startServer(t, exports());
  const hs = await ClientHandshake.open(addr);
  t.same(await hs.listMetaContext('alpha', []), [{ id: 0, name: 'base:allocation' }], 'LIST works before structured replies');
  t.same(await hs.listMetaContext('alpha', ['base:']), [{ id: 0, name: 'base:allocation' }]);
  t.same(await hs.listMetaContext('alpha', ['qemu:dirty-bitmap:x']), []);
  t.equal(await replyTypeOf(hs.setMetaContext('alpha', ['base:allocation'])), C.REP_ERR_INVALID, 'SET needs structured');
  await hs.structuredReply();
  t.equal(await replyTypeOf(hs.setMetaContext('nope', ['base:allocation'])), C.REP_ERR_UNKNOWN);
  t.match(await hs.option(C.OPT_SET_META_CONTEXT, Buffer.from([0, 0, 0, 9, 1])), [{ type: C.REP_ERR_INVALID }], 'malformed');
  t.same([...(await hs.setMetaContext('alpha', ['x-other:thing']))], [], 'unknown namespaces are ignored');
  t.same([...(await hs.setMetaContext('alpha', ['x-other:thing', 'base:allocation']))], [['base:allocation', 1]]);
  const client = await hs.go('alpha');
  t.equal(client.contextId, 1);
  t.same(await client.blockStatus(0, 4096), [{ length: 4096, flags: 3 }]);
  await client.disconnect();
});

t.test('selection for another export is not carried into GO', async (t) => {
  const { addr } = await startServer(t, exports());
  const hs = await ClientHandshake.open(addr);
  await hs.structuredReply();
  await hs.setMetaContext('beta', ['base:allocation']);
  const client = await hs.go('alpha');
  const r = await client.request({ type: C.CMD_BLOCK_STATUS, offset: 0, length: 512 });
  t.equal(r.errno, C.NBD_EINVAL, 'BLOCK_STATUS without a selected context');
  await client.disconnect();
});

t.test('unsupported options keep the stream in sync; STARTTLS is refused by policy', async (t) => {
  const { addr } = await startServer(t, exports(), { maxOptionData: 1024 });
  const hs = await ClientHandshake.open(addr);
  for (const opt of [4, 12, 13, 0xffff, 0x7fffffff]) t.match(await hs.option(opt, Buffer.alloc(opt % 50, 7)), [{ type: C.REP_ERR_UNSUP }]);
  t.match(await hs.option(C.OPT_STARTTLS), [{ type: C.REP_ERR_POLICY }]);
  t.match(await hs.option(99, Buffer.alloc(5000)), [{ type: C.REP_ERR_TOO_BIG }], 'over maxOptionData: skipped');
  t.match(await hs.option(C.OPT_LIST, Buffer.from('x')), [{ type: C.REP_ERR_INVALID }], 'LIST takes no data');
  t.match(await hs.option(C.OPT_GO, Buffer.from([0, 0, 0, 50, 1, 2])), [{ type: C.REP_ERR_INVALID }], 'malformed GO');
  const client = await hs.go('beta');
  t.equal(client.size, 2 << 20);
  await client.disconnect();
});

t.test('ABORT is acknowledged and closes', async (t) => {
  const { addr, server } = await startServer(t, exports());
  const hs = await ClientHandshake.open(addr);
  t.same(await hs.option(C.OPT_ABORT), [{ type: C.REP_ACK, data: Buffer.alloc(0) }]);
  await closed(hs);
  const rude = await ClientHandshake.open(addr);
  rude.sendRaw(encodeOption(C.OPT_ABORT));
  rude.close();
  const again = await ClientHandshake.open(addr);
  t.ok((await again.list()).length === 2, 'a client closing before the ACK does not disturb the server');
  again.close();
  await waitUntil(() => server.connectionCount === 0, 10_000, 'all three closed connections gone from the server');
  t.equal(server.connectionCount, 0, 'no connection left open');
  t.equal(server.stats.connections, 3, 'three connections were served');
  t.equal(server.stats.protocolErrors, 0, 'closing before the ACK is not a protocol error');
});

t.test('EXPORT_NAME: transmission on success, close on failure', async (t) => {
  const { addr } = await startServer(t, exports());
  const hs = await ClientHandshake.open(addr);
  const client = await hs.exportName('alpha');
  t.equal(client.size, 1 << 20);
  t.equal(client.transmissionFlags, 0xd6d);
  await client.write(0, Buffer.from('hello'));
  t.equal((await client.read(0, 5)).toString(), 'hello');
  await client.disconnect();
  const zeroes = await ClientHandshake.open(addr, { clientFlags: C.FLAG_FIXED_NEWSTYLE });
  const c2 = await zeroes.exportName('');
  t.equal(c2.size, 1 << 20, 'the 124 zero bytes are sent without NO_ZEROES and parsed');
  await c2.disconnect();
  const bad = await ClientHandshake.open(addr);
  await t.rejects(bad.exportName('nope'), { code: 'EIO' }, 'unknown export: connection closed');
});

t.test('unknown client flags drop the connection', async (t) => {
  const { addr, server } = await startServer(t, exports());
  const hs = await ClientHandshake.open(addr, { clientFlags: 0x8 });
  await closed(hs);
  t.equal(server.stats.protocolErrors, 1);
});

t.test('option cap and handshake timeout', async (t) => {
  const logs: string[] = [];
  const { addr, server } = await startServer(t, exports(), { maxOptions: 5, handshakeTimeoutMs: 300, log: (m) => logs.push(m) });
  const dropped = (reason: string) => logs.filter((l) => l.endsWith(`dropped: ${reason}`)).length;
  const hs = await ClientHandshake.open(addr);
  for (let i = 0; i < 5; i++) await hs.option(C.OPT_LIST);
  await t.rejects(withDeadline(hs.option(C.OPT_LIST), 10_000, 'the sixth option failing'),
    { name: 'NbdraidError', code: 'EIO', message: /^nbd client: (connection closed by the server|.*ECONNRESET)/ },
    'sixth option: the client sees its connection closed');
  t.equal(dropped('too many options'), 1, 'dropped by the option cap');
  t.equal(dropped('handshake timed out'), 0, 'not by the timeout');
  const idle = await ClientHandshake.open(addr);
  await waitUntil(() => dropped('handshake timed out') === 1, 10_000, 'the stalled handshake dropped by its timeout');
  await closed(idle);
  t.pass('a stalled handshake is dropped by the handshake timeout');
  const slowSocket = net.connect(addr as { port: number; host: string });
  slowSocket.on('error', () => {});
  slowSocket.resume();
  await nextEvent(slowSocket, 'close', 10_000, 'the server closing a socket that never sent client flags');
  t.equal(dropped('handshake timed out'), 2, 'even one that never sends client flags, by the timeout');
  t.equal(server.stats.protocolErrors, 3, 'one cap and two timeouts, nothing else');
  await waitUntil(() => server.connectionCount === 0, 10_000, 'every dropped connection gone from the server');
});

t.test('exports added and removed at runtime', async (t) => {
  const { addr, server } = await startServer(t, exports());
  const hs = await ClientHandshake.open(addr);
  const alpha = await hs.go('alpha');
  server.addExport({ name: 'gamma', device: new MemoryDevice(4096), description: 'late', default: true });
  t.throws(() => server.addExport(memoryExport('gamma')), { code: 'EEXIST' });
  t.ok(server.removeExport('alpha'));
  t.notOk(server.removeExport('alpha'));
  const hs2 = await ClientHandshake.open(addr);
  t.same((await hs2.list()).map((e) => e.name), ['beta', 'gamma']);
  t.equal(await replyTypeOf(hs2.info('alpha')), C.REP_ERR_UNKNOWN, 'removed export is unknown to new clients');
  const dflt = await hs2.go('');
  t.equal(dflt.size, 4096, 'the new default export');
  await alpha.write(0, Buffer.from('still served'));
  t.equal((await alpha.read(0, 12)).toString(), 'still served', 'an open connection keeps its removed export');
  await alpha.disconnect();
  await dflt.disconnect();
});

t.test('GO name longer than 4096 bytes is invalid', async (t) => {
  const { addr } = await startServer(t, exports());
  const hs = await ClientHandshake.open(addr);
  t.match(await hs.option(C.OPT_GO, encodeInfoRequest('n'.repeat(5000), [])), [{ type: C.REP_ERR_INVALID }]);
  hs.sendRaw(encodeClientFlags(0)); // 4 stray bytes: not an option header, so the server drops us
  await closed(hs);
});
