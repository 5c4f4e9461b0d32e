// RaidVolume: the RAID-5 volume as a BlockDevice over its member devices.
// Requests split per stripe; stripes of one request run in parallel; writes (and reads that must
// reconstruct) hold the stripe lock. A member error fails that member (superblocks updated before
// any write that skips it is acknowledged) and the request goes on degraded; a second failure
// takes the volume offline: every request then fails with EIO and nothing is acknowledged.
import { EventEmitter } from 'node:events';
import { NbdraidError } from '../errors.js';
import type { LogLevel } from '../log.js';
import {
  type BlockDevice, type BlockSizes, type Capabilities, type Extent, type WriteOptions, type ZeroOptions,
  DEFAULT_CAPABILITIES,
} from '../transport/block-device.js';
import type { Geometry } from './geometry.js';
import * as maintenance from './maintenance.js';
import type { ArrayMetadata } from './metadata.js';
import type { MetadataStore } from './metadata-store.js';
import { Slot } from './slots.js';
import { StripeLocks } from './stripe-lock.js';
import { MemberError, type StripeEnv, readStripe, writeStripe, zeroStripe } from './stripe-ops.js';
import { VolumeState } from './volume-state.js';

/** Whose member I/O: a client's request, or background work that need not go through a cache. */
export type IoLane = 'foreground' | 'background';

/** Region leases (issue 5): entered around every member access of a request. */
export interface RegionGate {
  regionStripes: number;
  enter(firstRegion: number, lastRegion: number, write: boolean): Promise<void> | void;
  leave(firstRegion: number, lastRegion: number, write: boolean): void;
}

export interface RaidVolumeOptions {
  gate?: RegionGate;
  /** A member was marked faulty; `path` is the failed device (the slot may get another later). */
  onMemberFailed?: (slot: number, reason: string, path: string | undefined) => void;
  /**
   * Where membership changes are recorded (see metadata-store.ts). Absent: the volume writes its
   * own superblocks from its metadata.
   */
  metadata?: MetadataStore;
  /** Superblocks marked dirty before the first write, clean when idle and on close (default true). */
  trackClean?: boolean;
  /** Idle time before the superblocks are marked clean again (ms, default 1000). */
  cleanDelayMs?: number;
  /** Where the one-line state reports go (default: stderr). */
  /** Where the volume's lines go, with how grave each is; default stderr. */
  log?: (line: string, level?: LogLevel) => void;
  /** Called after close() has closed the member devices (e.g. to drop member locks). */
  onClose?: () => Promise<void>;
  /** Stripes processed at once by one request (bounds memory of huge requests). */
  stripeParallelism?: number;
}

export class RaidVolume extends EventEmitter implements BlockDevice, StripeEnv {
  readonly size: number;
  readonly blockSizes: BlockSizes = { minimum: 1, preferred: 4096, maximum: 32 << 20 };
  readonly capabilities: Capabilities = { ...DEFAULT_CAPABILITIES, fastZero: false, multiConn: true, blockStatus: true };
  readonly g: Geometry;
  readonly slots: Slot[];
  readonly locks = new StripeLocks();
  readonly state: VolumeState;
  /** Member I/O errors seen, by slot (each failed read, write or zeroing, whatever followed). */
  readonly ioErrors: number[];
  private zeroes: Buffer | undefined;

  constructor(readonly meta: ArrayMetadata, readonly opts: RaidVolumeOptions = {}) {
    super();
    this.g = meta.geometry();
    this.size = this.g.size;
    this.slots = Array.from({ length: this.g.members }, (_, i) => slotFromMeta(meta, i, this.g.chunk / 512));
    this.ioErrors = this.slots.map(() => 0);
    this.state = new VolumeState(this, opts);
  }

  get name(): string {
    return this.meta.info.name;
  }

  // ---- StripeEnv: member access ----

  missingSlot(stripe: number): number {
    const degraded = this.state.degradedSlots;
    if (degraded.length === 0) return -1;
    let miss = -1;
    for (const s of degraded) {
      if (s.usable(stripe)) continue;
      if (miss >= 0) throw this.state.offlineError(`slots ${miss} and ${s.index} both unusable at stripe ${stripe}`);
      miss = s.index;
    }
    return miss;
  }

  /** `lane` 'background' lets the member bypass its cache (rebuild, check, repair; see BlockDevice). */
  async memberRead(slot: number, byte: number, into: Buffer, lane: IoLane = 'foreground'): Promise<void> {
    try {
      const d = this.device(slot);
      await (lane === 'background' && d.readBackground ? d.readBackground(byte, into) : d.read(byte, into));
    } catch (err) {
      throw this.memberError(slot, err);
    }
  }

  async memberWrite(slot: number, byte: number, data: Buffer, fua: boolean, lane: IoLane = 'foreground'): Promise<void> {
    try {
      const d = this.device(slot);
      await (lane === 'background' && d.writeBackground ? d.writeBackground(byte, data, { fua }) : d.write(byte, data, { fua }));
    } catch (err) {
      throw this.memberError(slot, err);
    }
  }

  async memberZero(slot: number, byte: number, length: number, fua: boolean): Promise<void> {
    try {
      await this.device(slot).writeZeroes(byte, length, { fua });
    } catch (err) {
      throw this.memberError(slot, err);
    }
  }

  private memberError(slot: number, err: unknown): MemberError {
    this.ioErrors[slot]++;
    return new MemberError(slot, err);
  }

  private device(slot: number): BlockDevice {
    const d = this.slots[slot].device;
    if (!d) throw new NbdraidError('EIO', `${this.name} slot ${slot}`, 'no member in this slot');
    return d;
  }

  // ---- BlockDevice ----

  async read(offset: number, into: Buffer): Promise<void> {
    this.state.check();
    await this.perStripe(offset, into.length, into, false, (s, start, buf) => this.retrying(() => {
      if (this.state.degradedSlots.length === 0) return readStripe(this, s, start, buf);
      return this.locks.with(s, () => readStripe(this, s, start, buf)); // reconstruction needs a steady stripe
    }));
  }

  async write(offset: number, data: Buffer, opts: WriteOptions = {}): Promise<void> {
    await this.state.writing(() => this.perStripe(offset, data.length, data, true, (s, start, buf) => this.locks.with(s, () =>
      this.retryingWrite(() => writeStripe(this, s, start, buf, !!opts.fua)))));
  }

  async writeZeroes(offset: number, length: number, opts: ZeroOptions = {}): Promise<void> {
    if (opts.fastZero) throw new NbdraidError('ENOTSUP', `zero ${this.name}`, 'fast zeroing is not supported by a RAID-5 volume');
    const fua = !!opts.fua;
    await this.state.writing(() => this.perStripe(offset, length, null, true, (s, start, buf) => this.locks.with(s, () =>
      this.retryingWrite(() => (buf.length === this.g.stripeData ? zeroStripe(this, s, fua) : writeStripe(this, s, start, buf, fua))))));
  }

  /** Discard is a hint: contents stay as they were, so parity stays right. */
  async trim(_offset: number, _length: number, _opts?: WriteOptions): Promise<void> {
    this.state.check();
  }

  async flush(): Promise<void> {
    await this.state.flush();
  }

  async blockStatus(_offset: number, length: number): Promise<Extent[]> {
    this.state.check();
    return [{ length, flags: 0 }];
  }

  async cache(): Promise<void> {
    this.state.check();
  }

  async close(): Promise<void> {
    await this.state.close();
  }

  // ---- member state ----

  /** Marks a member faulty (superblocks updated, events bumped). Refused when it would take the array offline, unless forced. */
  async failMember(slot: number, reason: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.state.failMember(slot, reason, opts.force ?? false);
  }

  /** Hot-removes a faulty member (superblocks updated). */
  async removeMember(slot: number): Promise<void> {
    await this.state.removeMember(slot);
  }

  /** Starts a rebuild: `device` takes the faulty or missing `slot`; nothing counts as recovered yet. */
  async addRebuildMember(slot: number, device: BlockDevice, opts: { path?: string; deviceUuid?: Buffer; devNumber?: number } = {}): Promise<void> {
    await this.state.addRebuildMember(slot, device, opts);
  }

  /** Marks stripes of a rebuilding slot recovered (e.g. done by another controller). */
  markRecovered(slot: number, first: number, count: number): void {
    this.slots[slot].recovered.add(first, first + count);
  }

  checkpointRecovery(slot: number): Promise<void> { return this.state.checkpointRecovery(slot); }

  /**
   * Background work hit a member error: fail that member as a client request would (a second
   * failure takes the volume offline). Never throws: the caller reports its own error.
   */
  async memberIoFailed(err: MemberError): Promise<void> {
    try {
      await this.state.memberFailed(err.slot, err.message);
    } catch {
      // offline now, and said so
    }
  }
  finishRebuild(slot: number): Promise<void> { return this.state.finishRebuild(slot); }

  get offline(): boolean {
    return this.state.offlineReason !== undefined;
  }

  // ---- background primitives (issue 5): each takes the stripe locks it needs, never the gate ----

  repairStripe(stripe: number): Promise<boolean> { return maintenance.repairStripe(this, stripe); }
  checkStripes(first: number, count: number): Promise<number[]> { return maintenance.checkStripes(this, first, count); }
  rebuildStripes(slot: number, first: number, count: number): Promise<void> { return maintenance.rebuildStripes(this, slot, first, count); }

  // ---- request plumbing ----

  /**
   * Runs `fn` per stripe of [offset, offset + len) with the stripe-relative start and the slice of
   * `source` (null: zeroes) for that stripe, a bounded number of stripes at a time.
   */
  private async perStripe(offset: number, len: number, source: Buffer | null, write: boolean,
    fn: (stripe: number, start: number, slice: Buffer) => Promise<void>): Promise<void> {
    if (len === 0) return;
    const sd = this.g.stripeData;
    const first = Math.floor(offset / sd);
    const last = Math.floor((offset + len - 1) / sd);
    const slice = (s: number): [number, Buffer] => {
      const a = Math.max(offset, s * sd);
      const b = Math.min(offset + len, (s + 1) * sd);
      return [a - s * sd, source ? source.subarray(a - offset, b - offset) : this.zeroBuffer().subarray(0, b - a)];
    };
    await this.gated(first, last, write, () => runLimited(first, last, this.opts.stripeParallelism ?? 64, (s) => fn(s, ...slice(s))));
  }

  private zeroBuffer(): Buffer {
    this.zeroes ??= Buffer.alloc(this.g.stripeData);
    return this.zeroes;
  }

  private async gated(first: number, last: number, write: boolean, fn: () => Promise<void>): Promise<void> {
    const gate = this.opts.gate;
    if (!gate) return fn();
    const r0 = Math.floor(first / gate.regionStripes);
    const r1 = Math.floor(last / gate.regionStripes);
    const wait = gate.enter(r0, r1, write);
    if (wait) await wait;
    try {
      await fn();
    } finally {
      gate.leave(r0, r1, write);
    }
  }

  /** Runs a stripe read; on a member error fails that member and runs it again degraded. */
  private async retrying(op: () => Promise<void>): Promise<void> {
    for (;;) {
      try {
        return await op();
      } catch (err) {
        if (!(err instanceof MemberError)) throw err;
        await this.state.memberFailed(err.slot, err.message);
      }
    }
  }

  /** Runs a stripe write; read-phase errors retry degraded, write-phase failures fail their members. */
  private async retryingWrite(op: () => Promise<number[]>): Promise<void> {
    let failed: number[] = [];
    await this.retrying(async () => { failed = await op(); });
    for (const slot of failed) await this.state.memberFailed(slot, 'write failed');
  }
}

function slotFromMeta(meta: ArrayMetadata, slot: number, chunkSectors: number): Slot {
  const disk = meta.diskInSlot(slot);
  if (!disk?.device) return new Slot(slot, 'missing', null);
  if (disk.recoveryOffset === undefined) return new Slot(slot, 'active', disk.device);
  const s = new Slot(slot, 'rebuilding', disk.device);
  s.recovered.add(0, Math.floor(disk.recoveryOffset / chunkSectors));
  return s;
}

/** Calls fn(s) for s in [first, last] with at most `limit` running; waits for all, then throws the first error. */
async function runLimited(first: number, last: number, limit: number, fn: (s: number) => Promise<void>): Promise<void> {
  if (first === last) return fn(first);
  let next = first;
  let error: unknown;
  const worker = async () => {
    while (next <= last) {
      const s = next++;
      try {
        await fn(s);
      } catch (err) {
        error ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, last - first + 1) }, worker));
  if (error !== undefined) throw error;
}
