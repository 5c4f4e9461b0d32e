// The one seeded pseudo-random generator of the tests and benchmarks (mulberry32): a seed gives
// the same sequence on every run, so a failing case reproduces from its seed.

/** A generator: each call returns the next number in [0, 1). */
export type Rand = () => number;

export function rng(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [0, n). */
export function randomInt(rand: Rand, n: number): number {
  return Math.floor(rand() * n);
}

/** `len` bytes from `rand`, four per call. */
export function randomBytes(rand: Rand, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  const whole = len & ~3;
  for (let i = 0; i < whole; i += 4) b.writeUInt32LE((rand() * 4294967296) >>> 0, i);
  const v = (rand() * 4294967296) >>> 0;
  for (let i = whole; i < len; i++) b[i] = (v >>> (8 * (i - whole))) & 0xff;
  return b;
}

/** `len` bytes that depend only on `seed`: a distinct, reproducible pattern per seed. */
export function seededBytes(len: number, seed: number): Buffer {
  return randomBytes(rng(seed), len);
}
