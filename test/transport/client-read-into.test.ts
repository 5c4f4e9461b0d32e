// READ into the caller's buffer: the reply's data (a simple reply's, or each OFFSET_DATA chunk's)
// is copied from the socket straight into the buffer given, holes are zeroed there, and a reply
// that does not cover every byte of the request fails it with EPROTO instead of leaving the
// buffer's old bytes to be taken for data. The server side here is a scripted peer on a real unix
// socket, the only way to send replies a correct server never sends.
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { NbdraidError } from '../../lib/errors.js';
import { NbdClient } from '../../lib/transport/client.js';
import { FrameChannel } from '../../lib/transport/client-handshake.js';
import { encodeChunk, encodeSimpleReply } from '../../lib/transport/codec-transmission.js';
import { REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE } from '../../lib/transport/constants.js';
import { ClientFrameReader } from '../../lib/transport/frame-reader.js';
import { tempDir } from '../helpers/temp-dir.js';

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const u64 = (v: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
};

const dataChunk = (cookie: bigint, offset: number, data: Buffer, done = false): Buffer =>
  encodeChunk(false, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE_OFFSET_DATA, cookie, 0, Buffer.concat([u64(offset), data]));

const holeChunk = (cookie: bigint, offset: number, length: number, done = false): Buffer => {
  const p = Buffer.alloc(12);
  p.writeBigUInt64BE(BigInt(offset));
  p.writeUInt32BE(length, 8);
  return encodeChunk(false, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE_OFFSET_HOLE, cookie, 0, p);
};

/** A client in transmission over a unix socket whose other end the test writes by hand. */
async function scripted(t: Test, structured: boolean): Promise<{ client: NbdClient; peer: net.Socket }> {
  const sock = path.join(tempDir(t, 'read-into-'), 's');
  let peer: net.Socket | undefined;
  const server = net.createServer((s) => { peer = s; s.on('data', () => {}); });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  const socket = net.connect(sock);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  while (!peer) await new Promise((r) => setImmediate(r));
  const reader: ClientFrameReader = new ClientFrameReader((c, e) => channel.simpleDataLength(c, e), undefined, (c) => channel.readTargetOf(c));
  const channel: FrameChannel = new FrameChannel(socket, reader);
  reader.startTransmission();
  const client = new NbdClient(channel, { size: 1 << 20, transmissionFlags: 1 }, { structured, extended: false, contextId: 0 });
  t.teardown(() => { client.close(); peer?.destroy(); server.close(); });
  return { client, peer };
}

t.test('simple reply: the data lands in the buffer given, in pieces of any size', async (t) => {
  const { client, peer } = await scripted(t, false);
  const into = Buffer.alloc(3000, 0xaa);
  const p = client.read(4096, 3000, { into });
  const data = pattern(3000, 1);
  const wire = Buffer.concat([encodeSimpleReply(0, 1n), data]);
  for (let i = 0; i < wire.length; i += 700) peer.write(wire.subarray(i, i + 700));
  const back = await p;
  t.equal(back, into, 'the caller\'s buffer is returned');
  t.ok(into.equals(data), 'every byte is the server\'s');
});

t.test('structured reply: data chunks placed at their offsets, holes zeroed, old bytes gone', async (t) => {
  const { client, peer } = await scripted(t, true);
  const into = Buffer.alloc(4096, 0xaa);
  const p = client.read(8192, 4096, { into });
  peer.write(Buffer.concat([
    dataChunk(1n, 8192 + 3072, pattern(1024, 2)),
    holeChunk(1n, 8192 + 1024, 2048),
    dataChunk(1n, 8192, pattern(1024, 3), true),
  ]));
  await p;
  t.ok(into.subarray(0, 1024).equals(pattern(1024, 3)), 'first data chunk');
  t.ok(into.subarray(1024, 3072).equals(Buffer.alloc(2048)), 'the hole reads as zeroes');
  t.ok(into.subarray(3072).equals(pattern(1024, 2)), 'last data chunk (sent first)');
});

t.test('a reply that leaves bytes of the request uncovered fails the read with EPROTO', async (t) => {
  const { client, peer } = await scripted(t, true);
  const into = Buffer.alloc(4096, 0xaa);
  const p = client.read(0, 4096, { into });
  peer.write(dataChunk(1n, 0, pattern(1024, 4), true));
  const err = await p.then(() => null, (e: NbdraidError) => e);
  t.equal(err?.code, 'EPROTO');
  t.match(err?.message, /covered 1024 of 4096 bytes/);
});

t.test('a data chunk outside the request is a protocol error, nothing is written past the buffer', async (t) => {
  const { client, peer } = await scripted(t, true);
  const backing = Buffer.alloc(8192, 0xaa);
  const into = backing.subarray(0, 4096);
  const p = client.read(0, 4096, { into });
  peer.write(dataChunk(1n, 3072, pattern(2048, 5), true));
  const err = await p.then(() => null, (e: NbdraidError) => e);
  t.equal(err?.code, 'EPROTO');
  t.match(err?.message, /data chunk outside the request/);
  t.ok(backing.subarray(4096).equals(Buffer.alloc(4096, 0xaa)), 'the bytes beyond the buffer are untouched');
});
