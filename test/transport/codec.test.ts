// Codec, byte for byte: expected bytes are written out as hex from the spec's layouts, not
// produced by the codec; decoders are checked against the same bytes.
import t from 'tap';
import * as hs from '../../lib/transport/codec-handshake.js';
import * as tx from '../../lib/transport/codec-transmission.js';
import { NbdraidError } from '../../lib/errors.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

t.test('greeting and client flags', async (t) => {
  const expected = hex('4e42444d41474943 | 49484156454f5054 | 0003');
  t.same(hs.encodeGreeting(3), expected);
  t.same(hs.decodeGreeting(expected), { handshakeFlags: 3 });
  t.throws(() => hs.decodeGreeting(hex('4e42444d41474944 49484156454f5054 0003')), { code: 'EPROTO' });
  t.same(hs.encodeClientFlags(2), hex('00000002'));
  t.equal(hs.decodeClientFlags(hex('00000003')), 3);
});

t.test('option request and option reply', async (t) => {
  const opt = hex('49484156454f5054 | 00000007 | 00000003 | 616263');
  t.same(hs.encodeOption(7, Buffer.from('abc')), opt);
  t.same(hs.decodeOptionHeader(opt), { option: 7, length: 3 });
  t.throws(() => hs.decodeOptionHeader(hex('49484156454f5055 00000007 00000003')), { code: 'EPROTO' });
  const rep = hex('0003e889045565a9 | 00000007 | 80000006 | 00000002 | 6e6f');
  t.same(hs.encodeOptionReply(7, 0x80000006, Buffer.from('no')), rep);
  t.same(hs.decodeOptionReplyHeader(rep), { option: 7, type: 0x80000006, length: 2 });
});

t.test('EXPORT_NAME reply with and without the 124 zeroes', async (t) => {
  const short = hex('0000000100000200 | 014d');
  t.same(hs.encodeExportNameReply(0x100000200, 0x14d, true), short);
  const long = hs.encodeExportNameReply(0x100000200, 0x14d, false);
  t.equal(long.length, 134);
  t.same(long.subarray(0, 10), short);
  t.ok(long.subarray(10).every((b) => b === 0));
  t.same(hs.decodeExportNameReply(long), { size: 0x100000200, transmissionFlags: 0x14d });
});

t.test('INFO/GO request body and REP_INFO payloads', async (t) => {
  const body = hex('00000004 | 6469736b | 0002 | 0001 0003');
  t.same(hs.encodeInfoRequest('disk', [1, 3]), body);
  t.same(hs.decodeInfoRequest(body), { name: 'disk', infos: [1, 3] });
  t.throws(() => hs.decodeInfoRequest(hex('00000004 6469736b 0002 0001')), { code: 'EPROTO' });
  t.throws(() => hs.decodeInfoRequest(hex('00000004 6469736b 0000 ff')), { code: 'EPROTO' });
  const exp = hex('0000 | 0000000040000000 | 0005');
  t.same(hs.encodeInfo({ type: 0, size: 1 << 30, transmissionFlags: 5 }), exp);
  t.same(hs.decodeInfo(exp), { type: 0, size: 1 << 30, transmissionFlags: 5 });
  const bs = hex('0003 | 00000200 | 00001000 | 02000000');
  t.same(hs.encodeInfo({ type: 3, minimum: 512, preferred: 4096, maximum: 32 << 20 }), bs);
  t.same(hs.decodeInfo(bs), { type: 3, minimum: 512, preferred: 4096, maximum: 32 << 20 });
  t.same(hs.encodeInfo({ type: 1, name: 'x' }), hex('0001 78'));
  t.same(hs.decodeInfo(hex('0002 6869')), { type: 2, description: 'hi' });
  t.throws(() => hs.decodeInfo(hex('0000 00000000')), { code: 'EPROTO' });
});

t.test('LIST reply and META_CONTEXT bodies', async (t) => {
  const server = hex('00000001 | 61 | 6465736372');
  t.same(hs.encodeServerReply('a', 'descr'), server);
  t.same(hs.decodeServerReply(server), { name: 'a', description: 'descr' });
  const meta = hex('00000001 | 61 | 00000002 | 00000005 | 626173653a | 00000000');
  t.same(hs.encodeMetaContextRequest('a', ['base:', '']), meta);
  t.same(hs.decodeMetaContextRequest(meta), { name: 'a', queries: ['base:', ''] });
  t.throws(() => hs.decodeMetaContextRequest(hex('00000001 61 ffffffff')), { code: 'EPROTO' });
  t.throws(() => hs.decodeMetaContextRequest(hex('00000001 61 00000001 00000009 626173')), { code: 'EPROTO' });
  const ctx = hex('00000007 | 626173653a616c6c6f636174696f6e');
  t.same(hs.encodeMetaContextReply(7, 'base:allocation'), ctx);
  t.same(hs.decodeMetaContextReply(ctx), { id: 7, name: 'base:allocation' });
});

t.test('compact and extended requests', async (t) => {
  const req = { flags: 0x0001, type: 1, cookie: 0x0102030405060708n, offset: 0x200001000, length: 4096 };
  const compact = hex('25609513 | 0001 | 0001 | 0102030405060708 | 0000000200001000 | 00001000');
  t.same(tx.encodeRequest(req, false), compact);
  t.same(tx.decodeRequest(compact, false), req);
  const big = { ...req, length: 0x100000000 };
  const extended = hex('21e41c71 | 0001 | 0001 | 0102030405060708 | 0000000200001000 | 0000000100000000');
  t.same(tx.encodeRequest(big, true), extended);
  t.same(tx.decodeRequest(extended, true), big);
  t.throws(() => tx.decodeRequest(compact, true), { code: 'EPROTO' }, 'compact magic refused once extended');
  t.throws(() => tx.decodeRequest(extended, false), { code: 'EPROTO' });
  t.equal(tx.requestHeaderSize(false), 28);
  t.equal(tx.requestHeaderSize(true), 32);
});

t.test('simple reply, structured chunk and extended chunk', async (t) => {
  const simple = hex('67446698 | 00000016 | 00000000000000ff');
  t.same(tx.encodeSimpleReply(22, 0xffn), simple);
  t.same(tx.decodeReplyHeader(simple), { kind: 'simple', cookie: 0xffn, error: 22, flags: 0, type: 0, offset: 0, length: 0 });
  const chunk = hex('668e33ef | 0001 | 0001 | 0000000000000009 | 0000000a | 0000000000001000 | aabb');
  t.same(tx.encodeChunk(false, 1, 1, 9n, 0, hex('0000000000001000 aabb')), chunk);
  t.same(tx.decodeReplyHeader(chunk), { kind: 'structured', cookie: 9n, error: 0, flags: 1, type: 1, offset: 0, length: 10 });
  const ext = hex('6e8a278c | 0001 | 0000 | 0000000000000009 | 0000000000001000 | 0000000000000000');
  t.same(tx.encodeChunk(true, 1, 0, 9n, 4096, Buffer.alloc(0)), ext);
  t.same(tx.decodeReplyHeader(ext), { kind: 'extended', cookie: 9n, error: 0, flags: 1, type: 0, offset: 4096, length: 0 });
  t.throws(() => tx.decodeReplyHeader(hex('12345678 00000000 0000000000000000')), { code: 'EPROTO' });
  t.equal(tx.replyHeaderSize(0x67446698), 16);
  t.equal(tx.replyHeaderSize(0x668e33ef), 20);
  t.equal(tx.replyHeaderSize(0x6e8a278c), 32);
  t.equal(tx.replyHeaderSize(0), 0);
});

t.test('in-place header writers match the whole-message encoders', async (t) => {
  const b = Buffer.alloc(40);
  tx.writeExtendedChunkHeader(b, 0, 1, 1, 5n, 512, 8 + 0);
  t.same(b.subarray(0, 32), hex('6e8a278c 0001 0001 0000000000000005 0000000000000200 0000000000000008'));
  tx.writeStructuredChunkHeader(b, 4, 1, 1, 5n, 12);
  t.same(b.subarray(4, 24), hex('668e33ef 0001 0001 0000000000000005 0000000c'));
  tx.writeSimpleReply(b, 8, 5, 5n);
  t.same(b.subarray(8, 24), hex('67446698 00000005 0000000000000005'));
});

t.test('ERROR and BLOCK_STATUS payloads', async (t) => {
  const err = hex('0000001c | 0003 | 626164');
  t.same(tx.encodeErrorPayload(28, 'bad'), err);
  t.same(tx.decodeErrorPayload(0x8001, err), { error: 28, message: 'bad' });
  t.same(tx.decodeErrorPayload(0x8002, Buffer.concat([err, hex('0000000000000010')])), { error: 28, message: 'bad', offset: 16 });
  t.throws(() => tx.decodeErrorPayload(0x8001, hex('0000001c 0009 62')), { code: 'EPROTO' });
  const extents = [{ length: 4096, flags: 3 }, { length: 8192, flags: 0 }];
  const compact = hex('00000001 | 00001000 00000003 | 00002000 00000000');
  t.same(tx.encodeBlockStatusPayload(1, extents, false), compact);
  t.same(tx.decodeBlockStatusPayload(compact, false), { contextId: 1, extents });
  const wide = hex('00000001 | 00000002 | 0000000000001000 0000000000000003 | 0000000000002000 0000000000000000');
  t.same(tx.encodeBlockStatusPayload(1, extents, true), wide);
  t.same(tx.decodeBlockStatusPayload(wide, true), { contextId: 1, extents });
  t.throws(() => tx.decodeBlockStatusPayload(hex('00000001 00000003 0000000000001000 0000000000000003'), true), { code: 'EPROTO' });
  t.throws(() => tx.decodeBlockStatusPayload(hex('00000001 00001000'), false), NbdraidError);
});
