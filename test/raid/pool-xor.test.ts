// Parity over aligned-pool buffers with the WebAssembly kernel in place: the same bytes as the
// byte-wise reference, for pool buffers of odd lengths, a pool buffer against a plain one, and
// buffers from a pool other than the kernel's.
import crypto from 'node:crypto';
import t from 'tap';
import { AlignedPool } from '../../lib/transport/aligned-pool.js';
import { xorBytes } from '../../lib/raid/parity-kernels.js';
import { xorInto } from '../../lib/raid/parity.js';
import { poolXor } from '../../lib/raid/pool-xor.js';

t.test('pool XOR equals the byte-wise reference', async (t) => {
  const pool = AlignedPool.create(4 << 20) as AlignedPool;
  const other = AlignedPool.create(1 << 20) as AlignedPool;
  const xor = poolXor(pool);
  t.not(xor, xorInto, 'this engine has WebAssembly SIMD: the in-place kernel is used');
  t.equal(poolXor(null), xorInto, 'no pool: the lane code');
  const cases: [string, () => Buffer, () => Buffer][] = [];
  for (const n of [1, 63, 64, 4096, 4096 + 17, 512 * 1024, (1 << 20) + 100]) {
    cases.push([`pool ^ pool, ${n} bytes`, () => pool.take(n), () => pool.take(n)]);
  }
  cases.push(['pool ^ plain', () => pool.take(70000), () => Buffer.allocUnsafeSlow(70000)]);
  cases.push(['plain ^ pool', () => Buffer.allocUnsafeSlow(70000), () => pool.take(70000)]);
  cases.push(['other pool ^ pool', () => other.take(8192), () => pool.take(8192)]);
  cases.push(['shorter source', () => pool.take(8192), () => pool.take(5000)]);
  for (const [label, mkDst, mkSrc] of cases) {
    const dst = mkDst();
    const src = mkSrc();
    crypto.randomFillSync(dst);
    crypto.randomFillSync(src);
    const want = Buffer.from(dst);
    xorBytes(want, src);
    const srcBefore = Buffer.from(src);
    xor(dst, src);
    t.ok(dst.equals(want), `${label}: dst ^= src`);
    t.ok(src.equals(srcBefore), `${label}: src untouched`);
    pool.give(dst);
    pool.give(src);
  }
});
