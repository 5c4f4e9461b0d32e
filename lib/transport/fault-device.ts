// FaultDevice: a decorator that injects failures into any BlockDevice (like nbdkit's error filter).
// Rules match an operation (and optionally a byte range) and fail it with a code, once, N times
// or forever. Used by tests to simulate dying members; never part of the real data path.
import { type ErrorCode, NbdraidError } from '../errors.js';
import type { BlockDevice, Extent, WriteOptions, ZeroOptions } from './block-device.js';

export type FaultOp = 'read' | 'write' | 'flush' | 'trim' | 'zero' | 'blockStatus';

export interface FaultRule {
  ops: FaultOp[] | 'all';
  /** Only requests overlapping [from, to) match; absent: any offset. */
  range?: [number, number];
  /** Skip this many matching requests before failing. */
  after?: number;
  /** Fail this many matching requests, then stop; absent: forever. */
  times?: number;
  code?: ErrorCode;
}

export class FaultDevice implements BlockDevice {
  private rules: { rule: FaultRule; seen: number; failed: number }[] = [];
  /** How many requests each operation received (whether failed or not). */
  readonly counts: Record<FaultOp, number> = { read: 0, write: 0, flush: 0, trim: 0, zero: 0, blockStatus: 0 };

  constructor(readonly inner: BlockDevice, readonly label = 'device') {}

  get size(): number { return this.inner.size; }
  get blockSizes() { return this.inner.blockSizes; }
  get capabilities() { return this.inner.capabilities; }

  inject(rule: FaultRule): void {
    this.rules.push({ rule, seen: 0, failed: 0 });
  }

  /** From now on every request fails with EIO, as a dead disk does. */
  failAll(): void {
    this.inject({ ops: 'all' });
  }

  clear(): void {
    this.rules = [];
  }

  async read(offset: number, into: Buffer): Promise<void> {
    this.check('read', offset, into.length);
    return this.inner.read(offset, into);
  }

  async write(offset: number, data: Buffer, opts?: WriteOptions): Promise<void> {
    this.check('write', offset, data.length);
    return this.inner.write(offset, data, opts);
  }

  async flush(): Promise<void> {
    this.check('flush', 0, 0);
    return this.inner.flush();
  }

  async trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    this.check('trim', offset, length);
    return this.inner.trim(offset, length, opts);
  }

  async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    this.check('zero', offset, length);
    return this.inner.writeZeroes(offset, length, opts);
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    this.check('blockStatus', offset, length);
    return this.inner.blockStatus(offset, length);
  }

  async close(): Promise<void> {
    return this.inner.close();
  }

  private check(op: FaultOp, offset: number, length: number): void {
    this.counts[op]++;
    for (const r of this.rules) {
      if (r.rule.ops !== 'all' && !r.rule.ops.includes(op)) continue;
      const [from, to] = r.rule.range ?? [0, Infinity];
      if (op !== 'flush' && (offset >= to || offset + length <= from)) continue;
      r.seen++;
      if (r.seen <= (r.rule.after ?? 0)) continue;
      if (r.rule.times !== undefined && r.failed >= r.rule.times) continue;
      r.failed++;
      throw new NbdraidError(r.rule.code ?? 'EIO', `${this.label} ${op} at ${offset}`, 'injected fault');
    }
  }
}
