// The RAID volume's region gate, backed by region leases: every foreground request holds the
// leases of the regions it touches for as long as it touches member data (invariant 1). A lease
// this controller already holds costs no SQL (LeaseCache's fast path). When a lease had to be
// fetched, another controller may have changed the region meanwhile (rebuilt it, failed a member,
// left it dirty): `afterFetch` brings this controller's view up to date before the I/O runs.
import type { LeaseCache } from '../coordination/index.js';
import type { RegionGate } from '../raid/volume.js';

export interface LeaseGateHooks {
  /** Every foreground request (the throttle's notion of "busy"). */
  onRequest?: () => void;
  /** After leases were fetched from the database rather than found cached. */
  afterFetch?: (firstRegion: number, lastRegion: number) => Promise<void> | void;
  /** A request whose leases were not all cached, and how long it waited for them (s). */
  onLeaseWait?: (seconds: number) => void;
}

export class LeaseGate implements RegionGate {
  constructor(private readonly cache: LeaseCache, readonly regionStripes: number, private readonly hooks: LeaseGateHooks = {}) {}

  enter(first: number, last: number, write: boolean): Promise<void> | void {
    this.hooks.onRequest?.();
    let r = first;
    while (r <= last && this.cache.tryAcquire(r, { write })) r++;
    if (r > last) return;
    return this.fetch(first, r, last, write);
  }

  leave(first: number, last: number, write = false): void {
    for (let r = first; r <= last; r++) this.cache.release(r, { write });
  }

  /** Acquires [from, last] in ascending order (regions below `from` are already held). */
  private async fetch(first: number, from: number, last: number, write: boolean): Promise<void> {
    let r = from;
    const asked = performance.now();
    try {
      for (; r <= last; r++) await this.cache.acquire(r, { write });
      this.hooks.onLeaseWait?.((performance.now() - asked) / 1000);
      await this.hooks.afterFetch?.(first, last);
    } catch (err) {
      if (r > first) this.leave(first, Math.min(r, last + 1) - 1, write);
      throw err;
    }
  }
}
