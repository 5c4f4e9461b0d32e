// How background work is cut: regions (the unit of leases and write intent) and partitions
// (contiguous stripe ranges aligned to regions). Every controller derives the same region size
// from the geometry alone, so no one has to agree on it at run time.
import type { NewPartition } from '../coordination/index.js';
import type { Geometry } from '../raid/geometry.js';

/** Data bytes covered by one region, roughly. */
const REGION_BYTES = 32 << 20;
/** Partitions a task is cut into, roughly: enough for several controllers to share. */
const TARGET_PARTITIONS = 64;

/** Stripes per region: a power of two, ~32 MiB of volume data, at least one stripe. */
export function regionStripes(g: Geometry): number {
  let n = 1;
  while (n * 2 * g.stripeData <= REGION_BYTES) n *= 2;
  return n;
}

/** Cuts [0, stripes) into about TARGET_PARTITIONS region-aligned ranges. */
export function planRange(stripes: number, perRegion: number, instructions: unknown = null): NewPartition[] {
  const regions = Math.ceil(stripes / perRegion);
  const perPartition = Math.max(1, Math.ceil(regions / TARGET_PARTITIONS));
  const out: NewPartition[] = [];
  for (let r = 0; r < regions; r += perPartition) {
    out.push({ stripeStart: r * perRegion, stripeEnd: Math.min(stripes, (r + perPartition) * perRegion), instructions });
  }
  return out;
}

/** One partition per run of consecutive regions (for resync of scattered dirty regions). */
export function planRegions(regions: number[], stripes: number, perRegion: number): NewPartition[] {
  const sorted = [...new Set(regions)].filter((r) => r * perRegion < stripes).sort((a, b) => a - b);
  const out: NewPartition[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1 && j + 1 - i < 8) j++;
    out.push({ stripeStart: sorted[i] * perRegion, stripeEnd: Math.min(stripes, (sorted[j] + 1) * perRegion), instructions: null });
    i = j + 1;
  }
  return out;
}
