// Background I/O throttle, md's speed_limit_min/max done per array and changeable at run time:
// - while foreground I/O was seen in the last `busyWindowMs`, background work runs at `minMBps`
//   (its guaranteed floor; foreground latency comes first above it);
// - when the volume is idle, background work may go up to `maxMBps` (0 = unlimited);
// - at most `inflight` background I/Os are outstanding at once.
// Time is injectable so the policy is testable without sleeping.

export interface ThrottleLimits {
  minMBps: number;
  maxMBps: number;
  inflight: number;
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

const MB = 1_000_000;

export class Throttle {
  private limits: ThrottleLimits;
  private lastForeground = -Infinity;
  /** Time at which the byte budget spent so far is paid off at the current rate. */
  private paidUntil = 0;
  private active = 0;
  private waiters: (() => void)[] = [];

  constructor(limits: ThrottleLimits, private readonly clock: Clock = realClock, private readonly busyWindowMs = 200) {
    this.limits = { ...limits };
  }

  /** Changed limits apply at once: reservations made at the old rate are forgiven. */
  setLimits(limits: ThrottleLimits): void {
    const old = this.limits;
    if (old.minMBps === limits.minMBps && old.maxMBps === limits.maxMBps && old.inflight === limits.inflight) return;
    this.limits = { ...limits };
    this.paidUntil = Math.min(this.paidUntil, this.clock.now());
    this.wakeOne();
  }

  getLimits(): ThrottleLimits {
    return { ...this.limits };
  }

  /** Called by the foreground path on every request: cheap, no allocation. */
  noteForeground(): void {
    this.lastForeground = this.clock.now();
  }

  /** The rate background work may use right now, in bytes per millisecond (Infinity: no cap). */
  currentRate(): number {
    const busy = this.clock.now() - this.lastForeground < this.busyWindowMs;
    const mbps = busy ? this.limits.minMBps : this.limits.maxMBps;
    if (!busy && mbps <= 0) return Infinity;
    return Math.max(mbps, 0.001) * MB / 1000;
  }

  /** Waits for an in-flight slot and for `bytes` of rate budget; returns the release function. */
  async acquire(bytes: number): Promise<() => void> {
    while (this.active >= Math.max(1, this.limits.inflight)) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.active++;
    try {
      await this.pace(bytes);
    } catch (err) {
      this.release();
      throw err;
    }
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.release();
      }
    };
  }

  private async pace(bytes: number): Promise<void> {
    const rate = this.currentRate();
    if (rate === Infinity) return;
    const now = this.clock.now();
    // Never bank more than a short burst of idle time.
    const start = Math.max(this.paidUntil, now - 50);
    const due = start + bytes / rate;
    this.paidUntil = due;
    // Sleep in slices of at most a second so that lifted limits take effect promptly; every
    // acquirer waits for its own reservation, so concurrent ones add up to the rate, not beyond.
    for (;;) {
      const wait = Math.min(due, this.paidUntil) - this.clock.now();
      if (wait <= 0 || this.currentRate() === Infinity) return;
      await this.clock.sleep(Math.min(wait, 1000));
    }
  }

  private release(): void {
    this.active--;
    this.wakeOne();
  }

  private wakeOne(): void {
    const next = this.waiters.shift();
    if (next) next();
  }
}
