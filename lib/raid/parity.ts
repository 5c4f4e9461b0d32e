// Parity: XOR over 64-bit lanes (the kernel that wins `npm run bench -- parity`, see
// parity-kernels.ts) where buffers are 8-byte aligned, byte-wise for unaligned heads and tails.
import { xorU64 } from './parity-kernels.js';

/** 64-bit lane view of buf[start, start + len) when aligned; undefined otherwise. */
function lanes(buf: Buffer, len: number): BigUint64Array | undefined {
  const at = buf.byteOffset;
  if (at % 8 !== 0) return undefined;
  return new BigUint64Array(buf.buffer, at, len >>> 3);
}

/** dst[i] ^= src[i] for i < min(dst.length, src.length). */
export const xorInto: (dst: Buffer, src: Buffer) => void = xorU64;

/** dst = XOR of all sources (dst may be one of them only if it is the first). */
export function xorAll(dst: Buffer, sources: Buffer[]): void {
  if (sources.length === 0) {
    dst.fill(0);
    return;
  }
  if (sources[0] !== dst) sources[0].copy(dst, 0, 0, dst.length);
  for (let i = 1; i < sources.length; i++) xorInto(dst, sources[i]);
}

/** True when every byte of buf is zero. */
export function isZero(buf: Buffer): boolean {
  let done = 0;
  if (buf.length >= 64) {
    const l = lanes(buf, buf.length);
    if (l) {
      for (let i = 0; i < l.length; i++) if (l[i] !== 0n) return false;
      done = l.length * 8;
    }
  }
  for (let i = done; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** A zero-filled buffer whose memory is 8-byte aligned (Buffer.alloc pools small buffers). */
export function alignedBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}
