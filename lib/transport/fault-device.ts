// FaultDevice: a decorator that injects failures into any BlockDevice (like nbdkit's error and
// delay filters). Rules match an operation (and optionally a byte range) and fail it with a code
// (EIO, ENOSPC, ...), once, N times or forever; a write may be torn (a prefix reaches the medium,
// then the call fails) and any request may be held back (a slow member). A BlockDevice write has
// no byte count, so a syscall's short write is FileDevice's to handle (retry, else fail); here it
// shows as the torn write it leaves behind. Used by tests; never part of the real data path.
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
  /** Writes only: this many bytes of the request reach the medium before it fails (a torn write). */
  tornAt?: number;
  /** Instead of failing, the request waits for this promise (or this many ms), then runs (a slow member). */
  delay?: Promise<unknown> | number;
}

type Match = { kind: 'pass' } | { kind: 'fail'; err: NbdraidError; tornAt?: number } | { kind: 'delay'; until: Promise<unknown> | number };

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
    const wait = this.check('read', offset, into.length);
    if (wait) await wait;
    return this.inner.read(offset, into);
  }

  async write(offset: number, data: Buffer, opts?: WriteOptions): Promise<void> {
    const m = this.match('write', offset, data.length);
    if (m.kind === 'fail' && m.tornAt !== undefined) {
      const n = Math.max(0, Math.min(m.tornAt, data.length));
      if (n > 0) await this.inner.write(offset, data.subarray(0, n));
      throw m.err;
    }
    const wait = this.apply(m);
    if (wait) await wait;
    return this.inner.write(offset, data, opts);
  }

  async flush(): Promise<void> {
    const wait = this.check('flush', 0, 0);
    if (wait) await wait;
    return this.inner.flush();
  }

  async trim(offset: number, length: number, opts?: WriteOptions): Promise<void> {
    const wait = this.check('trim', offset, length);
    if (wait) await wait;
    return this.inner.trim(offset, length, opts);
  }

  async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    const wait = this.check('zero', offset, length);
    if (wait) await wait;
    return this.inner.writeZeroes(offset, length, opts);
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    const wait = this.check('blockStatus', offset, length);
    if (wait) await wait;
    return this.inner.blockStatus(offset, length);
  }

  async close(): Promise<void> {
    return this.inner.close();
  }

  /** Throws a failure at once (no extra turn of the event loop); returns what a delay waits for. */
  private check(op: FaultOp, offset: number, length: number): Promise<unknown> | undefined {
    return this.apply(this.match(op, offset, length));
  }

  private apply(m: Match): Promise<unknown> | undefined {
    if (m.kind === 'fail') throw m.err;
    if (m.kind !== 'delay') return undefined;
    const until = m.until;
    return typeof until === 'number' ? new Promise((resolve) => setTimeout(resolve, until)) : until;
  }

  /** The first rule that fires for this request (counted once per request), or pass. */
  private match(op: FaultOp, offset: number, length: number): Match {
    this.counts[op]++;
    for (const r of this.rules) {
      if (r.rule.ops !== 'all' && !r.rule.ops.includes(op)) continue;
      const [from, to] = r.rule.range ?? [0, Infinity];
      if (op !== 'flush' && (offset >= to || offset + length <= from)) continue;
      r.seen++;
      if (r.seen <= (r.rule.after ?? 0)) continue;
      if (r.rule.times !== undefined && r.failed >= r.rule.times) continue;
      r.failed++;
      if (r.rule.delay !== undefined) return { kind: 'delay', until: r.rule.delay };
      const err = new NbdraidError(r.rule.code ?? 'EIO', `${this.label} ${op} at ${offset}`, 'injected fault');
      return { kind: 'fail', err, tornAt: op === 'write' ? r.rule.tornAt : undefined };
    }
    return { kind: 'pass' };
  }
}
