// IoFence: one switch in front of a set of devices. OPEN lets every request through; HELD keeps
// new requests waiting (not failed: a failed member request would make the array fail a healthy
// member) until the fence opens again; SEALED never lets anything through again, and whatever
// waits stays waiting, for the process that sealed it is about to go. A request already passed
// to the device runs to its end. Closing a device is not I/O to its data and always goes through.
//
// A controller that cannot renew its life on the coordination database holds its members' fence,
// and seals it once others may have taken over its work (lib/coordination's liveness, and
// docs/deployment.md on what the bound T means).
import type { BlockDevice, Extent, WriteOptions, ZeroOptions } from './block-device.js';

export type FenceState = 'open' | 'held' | 'sealed';

export class IoFence {
  private current: FenceState = 'open';
  private waiters: (() => void)[] = [];
  /** Requests waiting at the fence now (for logs and tests). */
  waiting = 0;
  /**
   * Runs before each request is let through, so that whoever moves the fence may do so first: a
   * process that was stopped for a while must not send one request on a stale view before its
   * timers have run.
   */
  beforePass: (() => void) | undefined;

  get state(): FenceState {
    return this.current;
  }

  hold(): void {
    if (this.current === 'open') this.current = 'held';
  }

  open(): void {
    if (this.current !== 'held') return;
    this.current = 'open';
    const go = this.waiters;
    this.waiters = [];
    for (const w of go) w();
  }

  seal(): void {
    this.current = 'sealed';
    this.waiters = [];
  }

  /** Resolves when a request may go to the device (at once while open). */
  pass(): Promise<void> | undefined {
    this.beforePass?.();
    if (this.current === 'open') return undefined;
    this.waiting++;
    return new Promise<void>((resolve) => {
      if (this.current === 'sealed') return; // never: the process is going
      this.waiters.push(() => { this.waiting--; resolve(); });
    });
  }

  /** `device` with every data request passing this fence first. */
  wrap(device: BlockDevice): BlockDevice {
    return new FencedDevice(device, this);
  }
}

class FencedDevice implements BlockDevice {
  readonly readBackground?: (offset: number, into: Buffer) => Promise<void>;
  readonly writeBackground?: (offset: number, data: Buffer, opts?: WriteOptions) => Promise<void>;
  readonly cache?: (offset: number, length: number) => Promise<void>;

  constructor(private readonly inner: BlockDevice, private readonly fence: IoFence) {
    const bg = inner.readBackground?.bind(inner);
    if (bg) this.readBackground = async (o, b) => { await fence.pass(); return bg(o, b); };
    const wbg = inner.writeBackground?.bind(inner);
    if (wbg) this.writeBackground = async (o, d, w) => { await fence.pass(); return wbg(o, d, w); };
    const c = inner.cache?.bind(inner);
    if (c) this.cache = async (o, l) => { await fence.pass(); return c(o, l); };
  }

  get size(): number { return this.inner.size; }
  get blockSizes() { return this.inner.blockSizes; }
  get capabilities() { return this.inner.capabilities; }

  async read(offset: number, into: Buffer): Promise<void> {
    await this.fence.pass();
    return this.inner.read(offset, into);
  }

  async write(offset: number, data: Buffer, opts?: WriteOptions): Promise<void> {
    await this.fence.pass();
    return this.inner.write(offset, data, opts);
  }

  async flush(): Promise<void> {
    await this.fence.pass();
    return this.inner.flush();
  }

  async trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    await this.fence.pass();
    return this.inner.trim(offset, length, opts);
  }

  async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    await this.fence.pass();
    return this.inner.writeZeroes(offset, length, opts);
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    await this.fence.pass();
    return this.inner.blockStatus(offset, length);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
