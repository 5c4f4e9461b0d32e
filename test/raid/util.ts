// Shared by the raid tests: error assertions and deterministic pseudo-random data.
import { NbdraidError } from '../../lib/errors.js';

interface Asserter {
  fail(msg: string): void;
  pass(msg: string): void;
}

/** Asserts that `fn` throws (or rejects with) an NbdraidError of `code` whose message starts with `prefix`. */
export async function rejectsWith(t: Asserter, fn: () => unknown, code: string, prefix = '', msg = ''): Promise<NbdraidError | undefined> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof NbdraidError && err.code === code && err.message.startsWith(prefix)) {
      t.pass(`${msg || 'rejects'}: ${err.message}`);
      return err;
    }
    t.fail(`${msg || 'rejects'}: wanted ${code} "${prefix}...", got ${(err as Error)?.message ?? String(err)} (${(err as NbdraidError)?.code})`);
    return undefined;
  }
  t.fail(`${msg || 'rejects'}: wanted ${code}, but it succeeded`);
  return undefined;
}

/** Small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(rand: () => number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i += 4) {
    const v = (rand() * 4294967296) >>> 0;
    for (let k = 0; k < 4 && i + k < len; k++) b[i + k] = (v >>> (8 * k)) & 0xff;
  }
  return b;
}
