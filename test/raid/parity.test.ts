import t from 'tap';
import { seededBytes } from '../helpers/prng.js';
import { alignedBuffer, isZero, xorAll, xorInto } from '../../lib/raid/parity.js';

function naive(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((x, i) => x ^ b[i]));
}

t.test('xorInto matches byte-wise XOR for aligned, unaligned and odd tails', async (t) => {
  for (const len of [1, 7, 63, 64, 65, 72, 80, 88, 4095, 4096, 4103, 70000]) {
    for (const [dOff, sOff] of [[0, 0], [0, 3], [5, 0], [1, 1], [8, 16]]) {
      const backingD = alignedBuffer(len + 32);
      const backingS = alignedBuffer(len + 32);
      const d = backingD.subarray(dOff, dOff + len);
      const s = backingS.subarray(sOff, sOff + len);
      seededBytes(len, len + dOff).copy(d);
      seededBytes(len, len * 7 + sOff).copy(s);
      const want = naive(d, s);
      xorInto(d, s);
      t.ok(d.equals(want), `len ${len} offsets ${dOff}/${sOff}`);
    }
  }
});

t.test('xorAll and isZero', async (t) => {
  const parts = [1, 2, 3, 4].map((k) => seededBytes(8192, k));
  const p = alignedBuffer(8192);
  xorAll(p, parts);
  for (const x of parts) xorInto(p, x);
  t.ok(isZero(p), 'parity XOR data is zero');
  p[8191] = 1;
  t.notOk(isZero(p), 'a one in the tail is seen');
  const q = alignedBuffer(100);
  q[3] = 9;
  t.notOk(isZero(q.subarray(1)), 'unaligned view is checked byte-wise');
});
