// Per-stripe exclusion inside one process: whoever updates a stripe's data and parity holds its
// lock, so two requests never interleave their read-compute-write of one stripe. Requests on
// different stripes proceed in parallel. Ranges are always taken in ascending order (no deadlock).

export class StripeLocks {
  /** Locked stripes, each with the queue of waiters to wake one at a time. */
  private readonly held = new Map<number, (() => void)[]>();

  /** Takes the lock of `stripe`; undefined when it was free (no promise on the fast path). */
  acquire(stripe: number): Promise<void> | undefined {
    const waiters = this.held.get(stripe);
    if (!waiters) {
      this.held.set(stripe, []);
      return undefined;
    }
    return new Promise((resolve) => waiters.push(resolve));
  }

  release(stripe: number): void {
    const waiters = this.held.get(stripe);
    if (!waiters) throw new Error(`stripe ${stripe} released but not held`);
    const next = waiters.shift();
    if (next) next();
    else this.held.delete(stripe);
  }

  async acquireRange(first: number, count: number): Promise<void> {
    for (let s = first; s < first + count; s++) {
      const wait = this.acquire(s);
      if (wait) await wait;
    }
  }

  releaseRange(first: number, count: number): void {
    for (let s = first; s < first + count; s++) this.release(s);
  }

  /** Runs `fn` holding the lock of `stripe`. */
  async with<T>(stripe: number, fn: () => Promise<T>): Promise<T> {
    const wait = this.acquire(stripe);
    if (wait) await wait;
    try {
      return await fn();
    } finally {
      this.release(stripe);
    }
  }

  get size(): number {
    return this.held.size;
  }
}
