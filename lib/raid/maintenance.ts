// Background primitives for rebuild, check and repair, built on the volume's member access and
// stripe locks (never the region gate: the caller holds the leases of its partition).
// A member's chunk range of consecutive stripes is contiguous on the member, and in every stripe
// the XOR of all members is zero; so rebuild and check work member-wise, whatever the layout.
import { NbdraidError } from '../errors.js';
import { AlignedPool } from '../transport/aligned-pool.js';
import { isZero } from './parity.js';
import { poolXor } from './pool-xor.js';
import { settle as all } from './stripe-ops.js';
import type { RaidVolume } from './volume.js';

/**
 * Buffers of background steps: page aligned, so that members that can read and write them with
 * O_DIRECT do (a whole-member pass through the page cache costs a copy per byte and evicts the
 * clients' working set). A step needs a few MiB (about 2 MiB of stripes per member set, a few steps
 * at once per pass); beyond the pool's room a step gets plain buffers, served through the cache.
 * A buffer is given back only once no read or write into it is still running.
 */
const scratch = AlignedPool.create(64 << 20);

/** Parity of those buffers in place in the pool's memory (see pool-xor.ts). */
const xorInto = poolXor(scratch);

const takeScratch = (size: number): Buffer => scratch?.take(size) ?? Buffer.allocUnsafeSlow(size);

function giveScratch(bufs: Buffer[]): void {
  for (const b of bufs) scratch?.give(b);
}

function checkStripeNo(vol: RaidVolume, first: number, count = 1): void {
  if (!Number.isInteger(first) || first < 0 || count < 1 || first + count > vol.g.stripes) {
    throw new NbdraidError('EINVAL', `array ${vol.name}`, `stripes [${first}, ${first + count}) outside 0..${vol.g.stripes}`);
  }
}

/** The stripes of [first, first + count) whose parity does not match. */
export async function checkStripes(vol: RaidVolume, first: number, count: number): Promise<number[]> {
  checkStripeNo(vol, first, count);
  requireOptimal(vol, 'check');
  const c = vol.g.chunk;
  await vol.locks.acquireRange(first, count);
  const bufs = vol.slots.map(() => takeScratch(c * count));
  try {
    await all(bufs.map((b, i) => vol.memberRead(i, vol.g.memberByte(first, 0), b, 'background')));
    for (let i = 1; i < bufs.length; i++) xorInto(bufs[0], bufs[i]);
    const bad: number[] = [];
    for (let k = 0; k < count; k++) if (!isZero(bufs[0].subarray(k * c, (k + 1) * c))) bad.push(first + k);
    return bad;
  } finally {
    giveScratch(bufs);
    vol.locks.releaseRange(first, count);
  }
}

/** Rewrites the parity of `stripe` from its data; true when it was wrong. */
export async function repairStripe(vol: RaidVolume, stripe: number): Promise<boolean> {
  checkStripeNo(vol, stripe);
  requireOptimal(vol, 'repair');
  const g = vol.g;
  return vol.locks.with(stripe, async () => {
    const data = Array.from({ length: g.dataMembers }, () => takeScratch(g.chunk));
    const old = takeScratch(g.chunk);
    const p = g.parityDisk(stripe);
    const at = g.memberByte(stripe, 0);
    try {
      await all([vol.memberRead(p, at, old, 'background'), ...data.map((b, d) => vol.memberRead(g.dataDisk(stripe, d), at, b, 'background'))]);
      for (let d = 1; d < data.length; d++) xorInto(data[0], data[d]);
      if (data[0].equals(old)) return false;
      await vol.memberWrite(p, at, data[0], false, 'background');
      return true;
    } finally {
      giveScratch([...data, old]);
    }
  });
}

/**
 * Reconstructs `slot`'s chunks of [first, first + count) from the other members, writes them to
 * the slot's device and marks them recovered, atomically under the stripe locks (so no write can
 * slip between the reconstruction and the copy).
 */
export async function rebuildStripes(vol: RaidVolume, slot: number, first: number, count: number): Promise<void> {
  checkStripeNo(vol, first, count);
  const target = vol.slots[slot];
  if (target?.state !== 'rebuilding') throw new NbdraidError('EINVAL', `array ${vol.name}`, `slot ${slot} is not being rebuilt`);
  const c = vol.g.chunk;
  await vol.locks.acquireRange(first, count);
  const bufs: Buffer[] = [];
  try {
    const others = vol.slots.filter((s) => s !== target);
    if (others.some((s) => s.state !== 'active')) throw vol.state.offlineError('a second member is missing during rebuild');
    bufs.push(...others.map(() => takeScratch(c * count)));
    const [out, ...temps] = bufs;
    const byte = vol.g.memberByte(first, 0);
    await all(others.map((o, i) => vol.memberRead(o.index, byte, bufs[i], 'background')));
    for (const t of temps) xorInto(out, t);
    await vol.memberWrite(slot, byte, out, false, 'background');
    target.recovered.add(first, first + count);
  } finally {
    giveScratch(bufs);
    vol.locks.releaseRange(first, count);
  }
}

function requireOptimal(vol: RaidVolume, what: string): void {
  const bad = vol.slots.find((s) => s.state !== 'active');
  if (bad) throw new NbdraidError('EBUSY', `array ${vol.name}`, `cannot ${what} while slot ${bad.index} is ${bad.state}; rebuild first`);
}
