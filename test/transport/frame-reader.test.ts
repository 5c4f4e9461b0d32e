// Frame readers with the input split at every offset (two pieces), in single bytes, and in random
// chunkings: the frames must come out identical every time.
import t from 'tap';
import { ByteQueue } from '../../lib/transport/byte-queue.js';
import { encodeClientFlags, encodeGreeting, encodeOption, encodeOptionReply, encodeExportNameReply } from '../../lib/transport/codec-handshake.js';
import { encodeChunk, encodeRequest, encodeSimpleReply } from '../../lib/transport/codec-transmission.js';
import { rng } from '../helpers/prng.js';
import { ClientFrameReader, type ClientFrame, ServerFrameReader, type ServerFrame } from '../../lib/transport/frame-reader.js';

const limits = { maxOptionData: 64, maxPayload: 1024, maxDiscard: 4096 };

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Cuts `stream` into pieces at the given offsets. */
function cut(stream: Buffer, at: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const a of [...at, stream.length]) {
    out.push(stream.subarray(prev, a));
    prev = a;
  }
  return out;
}

function randomCuts(len: number, rnd: () => number): number[] {
  const at: number[] = [];
  for (let p = Math.floor(rnd() * 40); p < len; p += 1 + Math.floor(rnd() * 300)) at.push(p);
  return at;
}

// What a client sends: flags, EXTENDED_HEADERS, an option over maxOptionData, GO, then extended
// requests: a kept WRITE, a dropped WRITE, a BLOCK_STATUS with PAYLOAD_LEN and a READ.
const go = encodeOption(7, Buffer.from('go-data'));
const clientStream = Buffer.concat([
  encodeClientFlags(3),
  encodeOption(11),
  encodeOption(99, pattern(100, 1)),
  go,
  encodeRequest({ flags: 1, type: 1, cookie: 1n, offset: 512, length: 700 }, true), pattern(700, 2),
  encodeRequest({ flags: 0, type: 1, cookie: 2n, offset: 0, length: 2000 }, true), pattern(2000, 3),
  encodeRequest({ flags: 0x20, type: 7, cookie: 3n, offset: 0, length: 5 }, true), pattern(5, 4),
  encodeRequest({ flags: 0, type: 0, cookie: 4n, offset: 4096, length: 1 << 20 }, true),
]);

function serverFrames(pieces: Buffer[]): unknown[] {
  const r = new ServerFrameReader(limits);
  const out: unknown[] = [];
  for (const p of pieces) {
    r.push(p);
    for (let f: ServerFrame | null = r.next(); f; f = r.next()) {
      out.push(f.kind === 'request' ? { ...f, payload: f.payload && Buffer.from(f.payload).toString('hex') } : f);
      if (f.kind === 'option' && f.option === 7) r.startTransmission(true, limits.maxPayload);
    }
  }
  if (r.buffered !== 0) throw new Error(`${r.buffered} bytes left unparsed`);
  return out;
}

t.test('server reader: whole stream, every split, single bytes, random chunkings', async (t) => {
  const whole = serverFrames([clientStream]);
  t.equal(whole.length, 8);
  t.match(whole[2], { kind: 'option', option: 99, length: 100, data: null }, 'oversized option skipped');
  t.match(whole[5], { kind: 'request', payload: null, payloadDropped: true }, 'oversized write skipped');
  t.match(whole[6], { kind: 'request', payload: pattern(5, 4).toString('hex') }, 'PAYLOAD_LEN payload read');
  for (let i = 1; i < clientStream.length; i++) {
    const got = serverFrames(cut(clientStream, [i]));
    if (JSON.stringify(got, big) !== JSON.stringify(whole, big)) t.fail(`split at ${i} differs`);
  }
  t.same(serverFrames(cut(clientStream, [...Array(clientStream.length).keys()].slice(1))), whole, 'one byte at a time');
  const rnd = rng(7);
  for (let k = 0; k < 200; k++) t.same(serverFrames(cut(clientStream, randomCuts(clientStream.length, rnd))), whole);
});

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

t.test('server reader: bad magic and undiscardable bodies throw EPROTO', async (t) => {
  const r = new ServerFrameReader(limits);
  r.push(Buffer.concat([encodeClientFlags(1), Buffer.from('IHAVEOPX'), Buffer.alloc(8)]));
  t.ok(r.next());
  t.throws(() => r.next(), { code: 'EPROTO' });
  const r2 = new ServerFrameReader(limits);
  r2.push(Buffer.concat([encodeClientFlags(1), encodeOption(7)]));
  r2.next();
  r2.next();
  r2.startTransmission(false, 1024);
  r2.push(encodeRequest({ flags: 0, type: 1, cookie: 1n, offset: 0, length: 10000 }, false));
  t.throws(() => r2.next(), { code: 'EPROTO' }, 'a 10000-byte payload is beyond the discard cap');
  const r3 = new ServerFrameReader(limits);
  r3.push(encodeClientFlags(1));
  r3.next();
  r3.startTransmission(false, 1024);
  r3.push(encodeRequest({ flags: 0, type: 1, cookie: 1n, offset: 0, length: 0 }, true));
  t.throws(() => r3.next(), { code: 'EPROTO' }, 'extended magic before extended headers were negotiated');
});

t.test('server reader: a kept payload waits for admission, nothing else does', async (t) => {
  const asked: [number, boolean][] = [];
  let allow = false;
  const r = new ServerFrameReader(limits, (n, whole) => { asked.push([n, whole]); return allow; });
  r.push(encodeClientFlags(1));
  r.next();
  r.startTransmission(false, 1024);
  const write = encodeRequest({ flags: 0, type: 1, cookie: 1n, offset: 0, length: 100 }, false);
  r.push(Buffer.concat([write, pattern(40, 1)]));
  t.equal(r.next(), null, 'held');
  t.ok(r.waiting, 'waiting for admission');
  t.equal(r.admittedPending, 0);
  t.same(asked, [[100, false]], 'asked with the payload not yet whole');
  allow = true;
  t.equal(r.next(), null, 'admitted, the rest of the payload still to come');
  t.notOk(r.waiting);
  t.equal(r.admittedPending, 100, 'an admitted payload not yet returned');
  t.ok(r.partial);
  r.push(pattern(60, 2));
  const f = r.next();
  t.match(f, { kind: 'request', payloadDropped: false });
  t.same((f as { payload: Buffer }).payload, Buffer.concat([pattern(40, 1), pattern(60, 2)]));
  t.notOk(r.partial, 'nothing begun');
  r.push(Buffer.concat([encodeRequest({ flags: 0, type: 0, cookie: 2n, offset: 0, length: 512 }, false), write, pattern(100, 3)]));
  t.match(r.next(), { kind: 'request', payload: null }, 'a READ is never asked about');
  t.match(r.next(), { kind: 'request', payload: pattern(100, 3) });
  t.same(asked.slice(2), [[100, true]], 'a payload that came whole with its header says so');
  const big = encodeRequest({ flags: 0, type: 1, cookie: 3n, offset: 0, length: 2000 }, false);
  r.push(Buffer.concat([big, Buffer.alloc(2000)]));
  t.match(r.next(), { kind: 'request', payloadDropped: true }, 'a dropped payload is skipped without asking');
  t.equal(asked.length, 3);
});

// What a server sends: greeting, option replies, then (after GO) simple, structured and extended replies.
const readCookie = 5n;
const serverStream = Buffer.concat([
  encodeGreeting(3),
  encodeOptionReply(7, 3, pattern(12, 5)),
  encodeOptionReply(7, 1),
  encodeSimpleReply(0, readCookie), pattern(300, 6),
  encodeSimpleReply(22, 6n),
  encodeSimpleReply(0, 7n),
  encodeChunk(false, 0, 1, 8n, 0, pattern(40, 7)),
  encodeChunk(true, 1, 6, 9n, 4096, pattern(24, 8)),
]);

function clientFrames(pieces: Buffer[]): ClientFrame[] {
  const r = new ClientFrameReader((cookie, error) => (cookie === readCookie && error === 0 ? 300 : 0));
  const out: ClientFrame[] = [];
  for (const p of pieces) {
    r.push(p);
    for (let f = r.next(); f; f = r.next()) {
      out.push(f);
      if (f.kind === 'optionReply' && f.header.type === 1) r.startTransmission();
    }
  }
  return out;
}

t.test('client reader: every split and random chunkings', async (t) => {
  const whole = clientFrames([serverStream]);
  t.equal(whole.length, 8);
  t.match(whole[3], { kind: 'reply', header: { kind: 'simple', error: 0 } });
  t.same((whole[3] as { payload: Buffer }).payload, pattern(300, 6), 'READ data follows its simple reply');
  t.equal((whole[4] as { payload: Buffer }).payload.length, 0, 'no data after an error reply');
  t.match(whole[7], { header: { kind: 'extended', offset: 4096, length: 24, type: 6 } });
  const norm = (fs: ClientFrame[]) => JSON.stringify(fs, (k, v) => (typeof v === 'bigint' ? v.toString() : v));
  for (let i = 1; i < serverStream.length; i++) {
    if (norm(clientFrames(cut(serverStream, [i]))) !== norm(whole)) t.fail(`split at ${i} differs`);
  }
  const rnd = rng(11);
  for (let k = 0; k < 200; k++) t.equal(norm(clientFrames(cut(serverStream, randomCuts(serverStream.length, rnd)))), norm(whole));
});

t.test('client reader: EXPORT_NAME reply with and without zeroes', async (t) => {
  for (const noZeroes of [true, false]) {
    const r = new ClientFrameReader(() => 0);
    const stream = Buffer.concat([encodeGreeting(3), encodeExportNameReply(1 << 20, 0x10d, noZeroes), encodeSimpleReply(0, 1n)]);
    const frames: ClientFrame[] = [];
    for (const piece of cut(stream, [5, 19, 25])) {
      r.push(piece);
      for (let f = r.next(); f; f = r.next()) {
        frames.push(f);
        if (f.kind === 'greeting') r.expectExportNameReply(noZeroes);
      }
    }
    t.match(frames, [{ kind: 'greeting' }, { kind: 'exportNameReply', size: 1 << 20, transmissionFlags: 0x10d }, { kind: 'reply' }]);
  }
});

t.test('ByteQueue: slices within a chunk, copies across chunks, skips', async (t) => {
  const q = new ByteQueue();
  const a = Buffer.from('abcdef');
  q.push(a);
  q.push(Buffer.from('ghij'));
  t.equal(q.peekUInt32(), Buffer.from('abcd').readUInt32BE(0));
  const first = q.take(2);
  t.equal(first.buffer, a.buffer, 'no copy inside one chunk');
  t.equal(q.peekUInt32(), Buffer.from('cdef').readUInt32BE(0));
  q.take(3);
  t.equal(q.peekUInt32(), Buffer.from('fghi').readUInt32BE(0), 'peek across chunks');
  t.equal(q.take(3).toString(), 'fgh');
  t.equal(q.skip(10), 2);
  t.equal(q.length, 0);
});
