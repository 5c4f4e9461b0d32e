// PowerLossDevice: a member as a disk with a volatile write cache. Writes land in the cache; a
// flush makes durable every write that completed before the flush began (fdatasync's rule, and it
// does not matter which process wrote: the cache belongs to the disk); powerLoss() drops whatever
// is still volatile. Several PowerLossDevice views may share one disk (two controllers' file
// descriptors on one member), each with its own flush gate to hold a flush in progress.
import type { BlockDevice, Capabilities, Extent, WriteOptions } from '../../lib/transport/block-device.js';
import type { MemoryDevice } from '../../lib/transport/memory-device.js';

interface Pending { offset: number; data: Buffer }

/** What the views of one member share: the durable medium and the volatile cache. */
export class Disk {
  pending: Pending[] = [];
  flushes = 0;
  constructor(readonly durable: MemoryDevice) {}

  /** Drops the volatile cache, as a power loss does. */
  powerLoss(): void {
    this.pending = [];
  }
}

export class PowerLossDevice implements BlockDevice {
  /** While set, a flush waits for it before making its writes durable. */
  gate: Promise<void> | undefined;

  constructor(readonly disk: Disk) {}

  get size(): number { return this.disk.durable.size; }
  get blockSizes() { return this.disk.durable.blockSizes; }
  get capabilities(): Capabilities { return this.disk.durable.capabilities; }

  async read(offset: number, into: Buffer): Promise<void> {
    await this.disk.durable.read(offset, into);
    for (const p of this.disk.pending) {
      const a = Math.max(offset, p.offset);
      const b = Math.min(offset + into.length, p.offset + p.data.length);
      if (b > a) p.data.copy(into, a - offset, a - p.offset, b - p.offset);
    }
  }

  async write(offset: number, data: Buffer, opts?: WriteOptions): Promise<void> {
    if (opts?.fua) return this.disk.durable.write(offset, data);
    this.disk.pending.push({ offset, data: Buffer.from(data) });
  }

  async writeZeroes(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    await this.write(offset, Buffer.alloc(length), opts);
  }

  async flush(): Promise<void> {
    const covered = this.disk.pending.length;
    if (this.gate) await this.gate;
    const due = this.disk.pending.slice(0, covered);
    this.disk.pending = this.disk.pending.slice(covered);
    for (const p of due) await this.disk.durable.write(p.offset, p.data);
    this.disk.flushes++;
  }

  async trim(): Promise<void> {}

  async blockStatus(_offset: number, length: number): Promise<Extent[]> {
    return [{ length, flags: 0 }];
  }

  async close(): Promise<void> {}
}
