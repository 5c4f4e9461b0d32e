// XOR kernels: dst[i] ^= src[i] for i < min(dst.length, src.length), each over any lengths and
// offsets. parity.ts uses the one that wins `npm run bench -- parity` on Node's buffers (64-bit
// lanes: the WebAssembly one is faster only on data already in its own memory, and copying a
// buffer in and out costs more than it saves; background steps, whose buffers live in the aligned
// pool's WebAssembly memory, use it in place: see pool-xor.ts).
import { wasmXor } from './xor-wasm.js';

export type XorKernel = (dst: Buffer, src: Buffer) => void;

/** The reference: one byte at a time. */
export function xorBytes(dst: Buffer, src: Buffer, from = 0): void {
  const len = Math.min(dst.length, src.length);
  for (let i = from; i < len; i++) dst[i] ^= src[i];
}

type Lanes<T> = new (buf: ArrayBufferLike, at: number, n: number) => T;

/**
 * Runs `loop` over the largest lane-aligned prefix (width bytes per lane) when both buffers are
 * aligned, else over an aligned copy of src when that is large enough to pay; bytes do the rest.
 */
function laned<T>(View: Lanes<T>, width: number, loop: (d: T, s: T, n: number) => void): XorKernel {
  return (dst, src) => {
    const len = Math.min(dst.length, src.length);
    const n = Math.floor(len / width);
    if (len < 64 || dst.byteOffset % width !== 0) return xorBytes(dst, src);
    // An unaligned source is copied to aligned memory first: memcpy is cheaper than byte-wise XOR.
    const s = src.byteOffset % width === 0 ? src : len >= 4096 ? Buffer.from(src.subarray(0, len)) : null;
    if (!s || s.byteOffset % width !== 0) return xorBytes(dst, src);
    loop(new View(dst.buffer, dst.byteOffset, n), new View(s.buffer, s.byteOffset, n), n);
    xorBytes(dst, src, n * width);
  };
}

/** 32-bit lanes, eight per iteration. */
export const xorU32 = laned(Int32Array, 4, (d, s, n) => {
  let i = 0;
  for (const end = n - (n % 8); i < end; i += 8) {
    d[i] ^= s[i]; d[i + 1] ^= s[i + 1]; d[i + 2] ^= s[i + 2]; d[i + 3] ^= s[i + 3];
    d[i + 4] ^= s[i + 4]; d[i + 5] ^= s[i + 5]; d[i + 6] ^= s[i + 6]; d[i + 7] ^= s[i + 7];
  }
  for (; i < n; i++) d[i] ^= s[i];
});

/** 64-bit lanes, four per iteration: V8 keeps the unrolled body in registers. */
export const xorU64 = laned(BigUint64Array, 8, (d, s, n) => {
  let i = 0;
  for (const end = n - (n % 4); i < end; i += 4) {
    d[i] ^= s[i]; d[i + 1] ^= s[i + 1]; d[i + 2] ^= s[i + 2]; d[i + 3] ^= s[i + 3];
  }
  for (; i < n; i++) d[i] ^= s[i];
});

/** Bytes moved through the WebAssembly memory per call of its kernel (each of dst and src). */
export const WASM_WINDOW = 256 * 1024;

const wasm = wasmXor(2 * WASM_WINDOW);

/** WebAssembly SIMD (v128.xor), copying windows of both buffers in and the result out; null without SIMD. */
export const xorWasm: XorKernel | null = wasm && ((dst, src) => {
  const len = Math.min(dst.length, src.length);
  const mem = wasm.memory;
  for (let at = 0; at < len; at += WASM_WINDOW) {
    const n = Math.min(WASM_WINDOW, len - at);
    mem.set(dst.subarray(at, at + n), 0);
    mem.set(src.subarray(at, at + n), WASM_WINDOW);
    wasm.xor(0, WASM_WINDOW, n);
    dst.set(mem.subarray(0, n), at);
  }
});

export const KERNELS: Record<string, XorKernel> = {
  bytes: xorBytes, u32x8: xorU32, u64x4: xorU64, ...(xorWasm ? { 'wasm-simd': xorWasm } : {}),
};
