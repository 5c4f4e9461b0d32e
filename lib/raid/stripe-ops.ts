// Reading and writing one stripe. Offsets here are stripe-relative data bytes (0..D*chunk).
// Writes: a full stripe computes parity from the new data alone; a partial write reads either the
// old data and parity it replaces (read-modify-write) or the rest of the stripe (reconstruct-write),
// whichever reads fewer bytes; when the member of a written chunk is missing, its old content is
// reconstructed first so the new parity covers it. The caller holds the stripe lock for writes.
//
// Failure rule: an error in the read phase throws MemberError before anything is written (the
// caller fails that member and retries). In the write phase every write is attempted and the
// failed slots are returned: the parity was computed for the complete new stripe, so the survivors
// of any single failure are consistent. In a stripe that was already degraded a failed write is a
// second failure: a partial write is then rolled back (old data and parity rewritten), so the
// missing member's data, which the request never covered, still reconstructs.
import { BufferPool } from '../transport/buffer-pool.js';
import type { Geometry } from './geometry.js';
import { xorInto } from './parity.js';

/**
 * New parity and the old data and parity a read-modify-write reads: pooled, since a fresh buffer
 * per stripe write costs page faults and collections. Each goes back once every write and undo of
 * its stripe write has settled (nothing reads it after that).
 */
const scratch = new BufferPool(32 << 20);

export class MemberError extends Error {
  constructor(readonly slot: number, override readonly cause: unknown) {
    super(`member ${slot}: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

export interface StripeEnv {
  readonly g: Geometry;
  /** The one slot that cannot be used for `stripe`, -1 when none; throws EIO when two cannot. */
  missingSlot(stripe: number): number;
  /** Member I/O; rejects with MemberError. Bytes are from the start of the member. */
  memberRead(slot: number, byte: number, into: Buffer): Promise<void>;
  memberWrite(slot: number, byte: number, data: Buffer, fua: boolean): Promise<void>;
  memberZero(slot: number, byte: number, length: number, fua: boolean): Promise<void>;
}

/** The part of a request inside one data chunk: [lo, hi) of chunk `d` held by `disk`. */
export interface Piece { d: number; disk: number; lo: number; hi: number; data: Buffer }

interface MemberWrite { slot: number; lo: number; buf: Buffer }
/** New parity of [lo, lo + buf.length); in a degraded stripe also what to write back on failure. */
interface ParityUpdate { lo: number; buf: Buffer; undo?: MemberWrite[] }

export function pieces(g: Geometry, stripe: number, start: number, data: Buffer): Piece[] {
  const out: Piece[] = [];
  const end = start + data.length;
  for (let d = Math.floor(start / g.chunk); d * g.chunk < end; d++) {
    const a = Math.max(start, d * g.chunk);
    const b = Math.min(end, (d + 1) * g.chunk);
    out.push({ d, disk: g.dataDisk(stripe, d), lo: a - d * g.chunk, hi: b - d * g.chunk, data: data.subarray(a - start, b - start) });
  }
  return out;
}

/** Waits for every promise; then throws the first failure (so no read is still filling a buffer). */
export async function settle(ps: Promise<void>[]): Promise<void> {
  const rs = await Promise.allSettled(ps);
  for (const r of rs) if (r.status === 'rejected') throw r.reason;
}

export async function readStripe(env: StripeEnv, stripe: number, start: number, into: Buffer): Promise<void> {
  const miss = env.missingSlot(stripe);
  const ps = pieces(env.g, stripe, start, into);
  const lost = ps.find((p) => p.disk === miss);
  const reads = settle(ps.filter((p) => p !== lost).map((p) => env.memberRead(p.disk, env.g.memberByte(stripe, p.lo), p.data)));
  if (!lost) return reads;
  // Pieces this request reads anyway that cover the lost piece's range are not read again for it.
  const known = new Map<number, Buffer>();
  for (const p of ps) if (p !== lost && p.lo <= lost.lo && p.hi >= lost.hi) known.set(p.disk, p.data.subarray(lost.lo - p.lo, lost.hi - p.lo));
  await settle([reads, reconstruct(env, stripe, miss, lost.lo, lost.data, known, reads)]);
}

/**
 * Fills `out` with [lo, lo + out.length) of `missing`'s chunk, as the XOR of every other member.
 * `known` holds that range of some members already (valid once `ready` resolves); the rest is read.
 */
async function reconstruct(env: StripeEnv, stripe: number, missing: number, lo: number, out: Buffer,
  known = new Map<number, Buffer>(), ready: Promise<void> = Promise.resolve()): Promise<void> {
  const byte = env.g.memberByte(stripe, lo);
  const toRead = [...Array(env.g.members).keys()].filter((s) => s !== missing && !known.has(s));
  const temps = toRead.slice(1).map(() => Buffer.allocUnsafeSlow(out.length));
  // XOR runs in 64-bit lanes only on 8-byte aligned memory: accumulate in an aligned buffer.
  const acc = out.byteOffset % 8 === 0 ? out : Buffer.allocUnsafeSlow(out.length);
  await settle([ready, env.memberRead(toRead[0], byte, acc), ...temps.map((t, i) => env.memberRead(toRead[i + 1], byte, t))]);
  for (const t of [...temps, ...known.values()]) xorInto(acc, t);
  if (acc !== out) acc.copy(out);
}

/** Writes stripe-relative [start, start + data.length); returns slots whose write failed. */
export async function writeStripe(env: StripeEnv, stripe: number, start: number, data: Buffer, fua: boolean): Promise<number[]> {
  const g = env.g;
  const miss = env.missingSlot(stripe);
  const parityDisk = g.parityDisk(stripe);
  const ps = pieces(g, stripe, start, data);
  const writes: MemberWrite[] = ps.filter((p) => p.disk !== miss).map((p) => ({ slot: p.disk, lo: p.lo, buf: p.data }));
  let undo: MemberWrite[] | undefined;
  if (miss !== parityDisk) {
    const parity = data.length === g.stripeData ? fullParity(ps, g.chunk) : await partialParity(env, stripe, ps, miss);
    writes.push({ slot: parityDisk, lo: parity.lo, buf: parity.buf });
    undo = parity.undo;
  }
  try {
    const failed = failedSlots(await Promise.allSettled(writes.map((w) => env.memberWrite(w.slot, g.memberByte(stripe, w.lo), w.buf, fua))));
    if (failed.length > 0 && undo) {
      const back = undo.filter((u) => !failed.includes(u.slot));
      await Promise.allSettled(back.map((u) => env.memberWrite(u.slot, g.memberByte(stripe, u.lo), u.buf, fua)));
    }
    return failed;
  } finally {
    for (const w of [...writes, ...(undo ?? [])]) scratch.giveView(w.buf); // the request's own data is not the pool's: ignored
  }
}

/** Zeroes a whole stripe: zero data makes zero parity, so every usable member is zeroed. */
export async function zeroStripe(env: StripeEnv, stripe: number, fua: boolean): Promise<number[]> {
  const g = env.g;
  const miss = env.missingSlot(stripe);
  const slots = [...Array(g.members).keys()].filter((s) => s !== miss);
  const rs = await Promise.allSettled(slots.map((s) => env.memberZero(s, g.memberByte(stripe, 0), g.chunk, fua)));
  return failedSlots(rs);
}

function failedSlots(rs: PromiseSettledResult<void>[]): number[] {
  const out: number[] = [];
  for (const r of rs) {
    if (r.status === 'fulfilled') continue;
    if (!(r.reason instanceof MemberError)) throw r.reason;
    out.push(r.reason.slot);
  }
  return out;
}

function fullParity(ps: Piece[], chunk: number): ParityUpdate {
  const buf = scratch.takeView(chunk);
  ps[0].data.copy(buf);
  for (let i = 1; i < ps.length; i++) xorInto(buf, ps[i].data);
  return { lo: 0, buf };
}

async function partialParity(env: StripeEnv, stripe: number, ps: Piece[], miss: number): Promise<ParityUpdate> {
  const lo = Math.min(...ps.map((p) => p.lo));
  const hi = Math.max(...ps.map((p) => p.hi));
  if (ps.some((p) => p.disk === miss)) return degradedParity(env, stripe, ps, miss, lo, hi);
  const written = ps.reduce((n, p) => n + p.hi - p.lo, 0);
  const rmwReads = written + (hi - lo);
  const rcwReads = env.g.dataMembers * (hi - lo) - written;
  // A missing untouched data member rules out reconstruct-write (it would need that member).
  if (miss >= 0 || rmwReads <= rcwReads) return rmwParity(env, stripe, ps, lo, hi, miss >= 0);
  return rcwParity(env, stripe, ps, lo, hi);
}

/** new parity = old parity ^ old data ^ new data, over the written ranges. */
async function rmwParity(env: StripeEnv, stripe: number, ps: Piece[], lo: number, hi: number, keepOld: boolean): Promise<ParityUpdate> {
  const g = env.g;
  const buf = scratch.takeView(hi - lo);
  const olds = ps.map((p) => scratch.takeView(p.hi - p.lo));
  try {
    await settle([
      env.memberRead(g.parityDisk(stripe), g.memberByte(stripe, lo), buf),
      ...ps.map((p, i) => env.memberRead(p.disk, g.memberByte(stripe, p.lo), olds[i])),
    ]);
  } catch (err) {
    for (const b of [buf, ...olds]) scratch.giveView(b); // every read has settled
    throw err;
  }
  const undo = keepOld ? [{ slot: g.parityDisk(stripe), lo, buf: Buffer.from(buf) }, ...ps.map((p, i) => ({ slot: p.disk, lo: p.lo, buf: olds[i] }))] : undefined;
  ps.forEach((p, i) => {
    const at = buf.subarray(p.lo - lo);
    xorInto(at, olds[i]);
    xorInto(at, p.data);
  });
  if (!undo) for (const b of olds) scratch.giveView(b); // kept for the undo otherwise
  return { lo, buf, undo };
}

/** new parity = XOR of the new stripe: the written data plus what was read of the rest. */
async function rcwParity(env: StripeEnv, stripe: number, ps: Piece[], lo: number, hi: number): Promise<ParityUpdate> {
  const g = env.g;
  const buf = Buffer.alloc(hi - lo);
  const reads: { disk: number; at: number; tmp: Buffer }[] = [];
  for (let d = 0; d < g.dataMembers; d++) {
    const disk = g.dataDisk(stripe, d);
    const p = ps.find((x) => x.d === d);
    const gaps: [number, number][] = p ? [[lo, p.lo], [p.hi, hi]] : [[lo, hi]];
    for (const [a, b] of gaps) if (b > a) reads.push({ disk, at: a, tmp: Buffer.allocUnsafeSlow(b - a) });
  }
  await settle(reads.map((r) => env.memberRead(r.disk, g.memberByte(stripe, r.at), r.tmp)));
  for (const r of reads) xorInto(buf.subarray(r.at - lo), r.tmp);
  for (const p of ps) xorInto(buf.subarray(p.lo - lo), p.data);
  return { lo, buf };
}

/** A written chunk's member is missing: rebuild the stripe image over [lo, hi), apply, re-derive parity. */
async function degradedParity(env: StripeEnv, stripe: number, ps: Piece[], miss: number, lo: number, hi: number): Promise<ParityUpdate> {
  const g = env.g;
  const images = Array.from({ length: g.dataMembers }, () => Buffer.allocUnsafeSlow(hi - lo));
  const missD = g.dataIndex(stripe, miss);
  const oldParity = Buffer.allocUnsafeSlow(hi - lo);
  await settle([
    env.memberRead(g.parityDisk(stripe), g.memberByte(stripe, lo), oldParity),
    ...images.map((img, d) => (d === missD ? Promise.resolve() : env.memberRead(g.dataDisk(stripe, d), g.memberByte(stripe, lo), img))),
  ]);
  const undo: MemberWrite[] = [{ slot: g.parityDisk(stripe), lo, buf: oldParity }];
  for (const p of ps) if (p.disk !== miss) undo.push({ slot: p.disk, lo: p.lo, buf: Buffer.from(images[p.d].subarray(p.lo - lo, p.hi - lo)) });
  images[missD].fill(0);
  for (let d = 0; d < images.length; d++) xorInto(images[missD], d === missD ? oldParity : images[d]);
  for (const p of ps) p.data.copy(images[p.d], p.lo - lo);
  const buf = Buffer.alloc(hi - lo);
  for (const img of images) xorInto(buf, img);
  return { lo, buf, undo };
}
