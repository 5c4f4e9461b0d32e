// Parity over an AlignedPool's buffers: they live in a WebAssembly.Memory, so the WebAssembly SIMD
// kernel works on them in place (about 4x the 64-bit lane code on 512 KiB in `npm run bench --
// parity`, where copying Node buffers in and out ate the gain). Anything else: parity.ts's xorInto.
import type { AlignedPool } from '../transport/aligned-pool.js';
import { xorInto } from './parity.js';
import { wasmXorOver } from './xor-wasm.js';

export type PoolXor = (dst: Buffer, src: Buffer) => void;

/** dst ^= src for min(dst.length, src.length) bytes, in place when both are `pool`'s. */
export function poolXor(pool: AlignedPool | null): PoolXor {
  const kernel = pool && wasmXorOver(pool.wasmMemory, pool.memory.length);
  if (!pool || !kernel) return xorInto;
  const store = pool.memory.buffer;
  return (dst, src) => {
    if (dst.buffer !== store || src.buffer !== store) return xorInto(dst, src);
    kernel(dst.byteOffset, src.byteOffset, Math.min(dst.length, src.length));
  };
}
