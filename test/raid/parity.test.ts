import t from 'tap';
import { randomBytes, rng, seededBytes } from '../helpers/prng.js';
import { KERNELS, WASM_WINDOW } from '../../lib/raid/parity-kernels.js';
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

t.test('every kernel gives what byte-wise XOR gives, over random sizes and alignments', async (t) => {
  t.ok(KERNELS['wasm-simd'], 'this Node has the WebAssembly SIMD kernel');
  const rand = rng(20261203);
  const int = (n: number): number => Math.floor(rand() * n);
  const edges = [0, 1, 7, 8, 63, 64, 65, 127, 4096, 4099, WASM_WINDOW - 1, WASM_WINDOW, WASM_WINDOW + 65, 3 * WASM_WINDOW + 5];
  const cases = [...edges.map((len) => [len, len]), ...Array.from({ length: 40 }, () => [int(300_000), int(300_000)])];
  for (const [name, kernel] of Object.entries(KERNELS)) {
    const bad: string[] = [];
    for (const [dLen, sLen] of cases) {
      const [dOff, sOff] = [int(16), int(16)];
      const d = alignedBuffer(dLen + 16).subarray(dOff, dOff + dLen);
      const s = alignedBuffer(sLen + 16).subarray(sOff, sOff + sLen);
      randomBytes(rand, dLen).copy(d);
      randomBytes(rand, sLen).copy(s);
      const n = Math.min(dLen, sLen);
      const want = Buffer.concat([naive(d.subarray(0, n), s.subarray(0, n)), d.subarray(n)]);
      const before = Buffer.from(s);
      kernel(d, s);
      if (!d.equals(want) || !s.equals(before)) bad.push(`${dLen}@${dOff} ^ ${sLen}@${sOff}`);
    }
    t.same(bad, [], `${name}: ${cases.length} cases equal byte-wise XOR, bytes past the shorter buffer untouched, source unchanged`);
  }
});
