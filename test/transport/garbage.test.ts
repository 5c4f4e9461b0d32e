// Garbage traffic: many short connections send random bytes, mutated handshakes, or a valid
// handshake followed by random and mutated requests; some hang up abruptly. Afterwards the same
// server still serves a normal client correctly, and nothing was thrown or left unhandled.
// Bounded in count (at least 10,000 handshakes and requests) and in time (90 s).
import net from 'node:net';
import t from 'tap';
import { encodeClientFlags, encodeInfoRequest, encodeOption } from '../../lib/transport/codec-handshake.js';
import { encodeRequest } from '../../lib/transport/codec-transmission.js';
import { NbdClient } from '../../lib/transport/client.js';
import * as C from '../../lib/transport/constants.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { randomInt, randomBytes as seededRandomBytes, rng } from '../helpers/prng.js';
import { startServer } from './fixtures.js';

const TARGET = 10_000;
const TIME_LIMIT_MS = 90_000;
const CONCURRENCY = 32;

const rand = rng(12345);
const rnd = (n: number): number => randomInt(rand, n);
const randomBytes = (n: number): Buffer => seededRandomBytes(rand, n);

/** Flips, overwrites or truncates a few bytes of a valid message. */
function mutate(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let k = rnd(4); k >= 0 && out.length > 0; k--) {
    const at = rnd(out.length);
    const how = rnd(3);
    if (how === 0) out[at] ^= 1 << rnd(8);
    else if (how === 1) out[at] = rnd(256);
    else return out.subarray(0, at);
  }
  return out;
}

const OPTIONS = [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 4, 99];

function randomOption(): Buffer {
  const opt = OPTIONS[rnd(OPTIONS.length)];
  const body = opt === 6 || opt === 7 ? encodeInfoRequest(['', 'm', 'x'][rnd(3)], [rnd(5)]) : randomBytes(rnd(3) * rnd(20));
  return rnd(3) === 0 ? mutate(encodeOption(opt, body)) : encodeOption(opt, body);
}

function randomRequest(extended: boolean): Buffer {
  const type = rnd(10);
  const length = [0, 1, 512, 4096, 65536, 1 << 20, rnd(70000)][rnd(7)];
  const req = { flags: rnd(4) === 0 ? rnd(0x80) : 0, type, cookie: BigInt(rnd(1000)), offset: rnd(3) === 0 ? rnd(2 << 20) : rnd(64) * 4096, length };
  const header = encodeRequest(req, extended);
  const payload = type === C.CMD_WRITE && length <= 65536 ? randomBytes(length) : Buffer.alloc(0);
  const msg = Buffer.concat([header, payload]);
  return rnd(8) === 0 ? mutate(msg) : msg;
}

/** One garbage session; returns how many handshakes + requests it sent. */
function session(): { bytes: Buffer; items: number } {
  const flags = encodeClientFlags([3, 1, 0, 2, 7][rnd(5)]);
  switch (rnd(4)) {
    case 0: return { bytes: randomBytes(rnd(300)), items: 1 };
    case 1: {
      const opts = Array.from({ length: 1 + rnd(5) }, randomOption);
      return { bytes: Buffer.concat([flags, ...opts]), items: 1 + opts.length };
    }
    default: {
      const extended = rnd(2) === 0;
      const nego = extended ? [encodeOption(C.OPT_EXTENDED_HEADERS)] : rnd(2) ? [encodeOption(C.OPT_STRUCTURED_REPLY)] : [];
      const go = encodeOption(C.OPT_GO, encodeInfoRequest('m', []));
      const reqs = Array.from({ length: 4 + rnd(12) }, () => randomRequest(extended));
      return { bytes: Buffer.concat([encodeClientFlags(3), ...nego, go, ...reqs]), items: 1 + reqs.length };
    }
  }
}

function runOne(addr: { path: string }): Promise<number> {
  const { bytes, items } = session();
  const abrupt = rnd(4) === 0;
  return new Promise((resolve) => {
    const s = net.connect(addr.path);
    const done = () => { clearTimeout(timer); resolve(items); };
    const timer = setTimeout(() => s.destroy(), 3000);
    s.on('error', () => {});
    s.on('close', done);
    s.on('data', () => {});
    s.on('connect', () => {
      // Wait for the greeting, then send everything at once, or cut off half-way.
      s.once('data', () => {
        if (abrupt) s.write(bytes.subarray(0, rnd(bytes.length + 1)), () => s.destroy());
        else s.end(bytes);
      });
    });
  });
}

t.test('garbage traffic never disturbs the server', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);
  t.teardown(() => {
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
  });
  const device = new MemoryDevice(2 << 20);
  const { server, addr } = await startServer(t, [{ name: 'm', device }], { unix: true, handshakeTimeoutMs: 2000, shutdownGraceMs: 500 });
  const start = Date.now();
  let items = 0;
  let sessions = 0;
  while (items < TARGET && Date.now() - start < TIME_LIMIT_MS) {
    const batch = await Promise.all(Array.from({ length: CONCURRENCY }, () => runOne(addr as { path: string })));
    items += batch.reduce((a, b) => a + b, 0);
    sessions += batch.length;
  }
  t.ok(items >= TARGET, `${items} handshakes and requests over ${sessions} connections`);
  t.same(unhandled, [], 'no unhandled rejection or exception');
  t.comment(`server counters: ${JSON.stringify(server.stats)}`);

  const c = await NbdClient.connect({ ...addr, exportName: 'm' });
  const data = randomBytes(100_000);
  await c.write(12_345, data, { fua: true });
  t.same(await c.read(12_345, data.length), data, 'a normal client is served correctly afterwards');
  t.equal((await c.request({ type: C.CMD_READ, offset: 2 << 20, length: 1 })).errno, C.NBD_EINVAL);
  await c.disconnect();
});
