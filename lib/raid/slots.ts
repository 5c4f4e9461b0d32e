// The volume's view of its slots: which member device serves each slot and whether a stripe of it
// can be trusted. A rebuilding slot is trusted only on stripes already recovered (a set of
// stripe ranges, since partitions of a rebuild finish in any order).
import type { BlockDevice } from '../transport/block-device.js';

export type SlotState = 'active' | 'missing' | 'faulty' | 'rebuilding';

/** Sorted, disjoint, non-adjacent half-open ranges of stripes. */
export class RangeSet {
  private ranges: [number, number][] = [];

  has(x: number): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b] = this.ranges[mid];
      if (x < a) hi = mid - 1;
      else if (x >= b) lo = mid + 1;
      else return true;
    }
    return false;
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    const out: [number, number][] = [];
    let [a, b] = [start, end];
    for (const r of this.ranges) {
      if (r[1] < a || r[0] > b) out.push(r);
      else [a, b] = [Math.min(a, r[0]), Math.max(b, r[1])];
    }
    out.push([a, b]);
    this.ranges = out.sort((x, y) => x[0] - y[0]);
  }

  /** End of the range starting at 0 (the contiguous recovered prefix), 0 when none. */
  prefix(): number {
    return this.ranges.length > 0 && this.ranges[0][0] === 0 ? this.ranges[0][1] : 0;
  }

  /** Count of members in [0, limit). */
  covered(limit: number): number {
    return this.ranges.reduce((n, [a, b]) => n + Math.max(0, Math.min(b, limit) - a), 0);
  }

  toJSON(): [number, number][] {
    return this.ranges.map(([a, b]) => [a, b]);
  }
}

export class Slot {
  recovered = new RangeSet();

  constructor(
    readonly index: number,
    public state: SlotState,
    public device: BlockDevice | null,
  ) {}

  /** Whether this slot's chunk of `stripe` holds valid data or parity (and writes must reach it). */
  usable(stripe: number): boolean {
    if (this.state === 'active') return true;
    return this.state === 'rebuilding' && this.recovered.has(stripe);
  }

  /** Not fully in sync: missing, faulty, or rebuilding. */
  get degraded(): boolean {
    return this.state !== 'active';
  }
}
