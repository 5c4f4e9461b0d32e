// The volume's state machine: member failures, offline, dirty/clean superblocks, flush and close.
// Superblock commits run one after another (a chain); a write is acknowledged only after every
// commit started before it finished, so no acknowledged write depends on a member the superblocks
// still call in sync.
import { NbdraidError } from '../errors.js';
import type { LogLevel } from '../log.js';
import type { BlockDevice } from '../transport/block-device.js';
import { newUuid } from './metadata.js';
import { type MemberChange, StaleChange } from './metadata-store.js';
import { ROLE_FAULTY } from './superblock.js';
import { RangeSet, type Slot } from './slots.js';
import type { RaidVolume, RaidVolumeOptions } from './volume.js';

export class VolumeState {
  /** Slots not fully in sync (missing, faulty, rebuilding); cached for the hot path. */
  degradedSlots: Slot[] = [];
  offlineReason: string | undefined;
  private chain: Promise<void> = Promise.resolve();
  private dirtying: Promise<void> | undefined;
  private writesInFlight = 0;
  private cleanTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly vol: RaidVolume, private readonly opts: RaidVolumeOptions) {
    this.refresh();
  }

  refresh(): void {
    this.degradedSlots = this.vol.slots.filter((s) => s.degraded);
  }

  /** Throws when the volume cannot serve requests. */
  check(): void {
    if (this.closed) throw new NbdraidError('ESHUTDOWN', `array ${this.vol.name}`, 'the volume is closed');
    if (this.offlineReason !== undefined) throw this.offlineError(this.offlineReason);
  }

  offlineError(reason: string): NbdraidError {
    this.goOffline(reason);
    return new NbdraidError('EIO', `array ${this.vol.name}`, `offline: ${this.offlineReason}`);
  }

  /** Runs a write request: superblocks dirty first; acknowledged only after pending commits. */
  async writing(fn: () => Promise<void>): Promise<void> {
    this.check();
    this.writesInFlight++;
    clearTimeout(this.cleanTimer);
    try {
      await this.ensureDirty();
      await fn();
      await this.chain;
      this.check(); // offline meanwhile: the write may be half done; never acknowledge it
    } finally {
      if (--this.writesInFlight === 0) this.scheduleClean();
    }
  }

  /**
   * Schedules a superblock commit after those already queued and waits for it: `change` goes to
   * the metadata store when there is one, else the volume writes its own superblocks (a change
   * that fails a member bumps events by 2). A store that refuses a stale change rejects the
   * returned promise (nothing was written); a commit that could not be written takes the volume
   * offline.
   */
  commit(change?: MemberChange): Promise<void> {
    const store = this.opts.metadata;
    const run = async () => {
      if (store && change) {
        try {
          await store.commit(change);
        } catch (err) {
          if (err instanceof StaleChange) throw err;
          this.goOffline(`superblock update failed: ${(err as Error).message}`);
        }
        return;
      }
      const failed = await this.vol.meta.commit(change?.kind === 'failed' ? 2 : 1);
      if (failed.length > 0) this.goOffline(`superblock update failed on ${failed.map((d) => d.path ?? `device ${d.devNumber}`).join(', ')}`);
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** A member returned an error: fail it, or go offline when it is the second. */
  async memberFailed(slot: number, reason: string): Promise<void> {
    const s = this.vol.slots[slot];
    if (s.state === 'faulty' || s.state === 'missing') {
      await this.chain;
      this.check();
      return;
    }
    const other = this.degradedSlots.find((x) => x !== s);
    if (other) throw this.offlineError(`member ${slot} failed (${reason}) while slot ${other.index} is ${other.state}`);
    await this.markFaulty(s, reason);
    this.check();
  }

  async failMember(slot: number, reason: string, force: boolean): Promise<void> {
    this.check();
    const s = this.vol.slots[slot];
    if (!s) throw new NbdraidError('EINVAL', `array ${this.vol.name}`, `no slot ${slot}; slots are 0..${this.vol.slots.length - 1}`);
    if (s.state === 'faulty' || s.state === 'missing') return;
    const other = this.degradedSlots.find((x) => x !== s);
    if (other && !force) {
      throw new NbdraidError('EBUSY', `array ${this.vol.name}`, `failing slot ${slot} would take the array offline (slot ${other.index} is ${other.state}); pass --force to do it anyway`);
    }
    if (other) throw this.offlineError(`member ${slot} failed by request (${reason}) while slot ${other.index} is ${other.state}`);
    await this.markFaulty(s, reason);
  }

  /** Hot-removes a faulty member: its device is closed and the slot becomes missing. */
  async removeMember(slot: number): Promise<void> {
    this.check();
    const s = this.vol.slots[slot];
    if (s?.state !== 'faulty') throw new NbdraidError('EBUSY', `array ${this.vol.name}`, `slot ${slot} is ${s?.state ?? 'not a slot'}; only a faulty member can be removed`);
    const device = s.device;
    const path = this.vol.meta.diskInSlot(slot)?.path;
    s.device = null;
    s.state = 'missing';
    this.refresh();
    await device?.close();
    await this.commit({ kind: 'removed', slot, path });
  }

  /** Puts `device` into a faulty or missing slot as a member being rebuilt (nothing recovered yet). */
  async addRebuildMember(slot: number, device: BlockDevice, opts: { path?: string; deviceUuid?: Buffer; devNumber?: number }): Promise<void> {
    this.check();
    const s = this.vol.slots[slot];
    if (!s || (s.state !== 'faulty' && s.state !== 'missing')) {
      throw new NbdraidError('EBUSY', `array ${this.vol.name}`, `slot ${slot} is ${s?.state ?? 'not a slot'}; only a faulty or missing slot can be rebuilt`);
    }
    const meta = this.vol.meta;
    const devNumber = opts.devNumber ?? Math.max(-1, ...meta.disks.map((d) => d.devNumber)) + 1;
    for (const d of meta.disks) if (d.role === slot) d.role = ROLE_FAULTY; // the member it replaces
    const reused = meta.disks.findIndex((d) => d.devNumber === devNumber);
    if (reused >= 0) meta.disks.splice(reused, 1);
    meta.disks.push({
      devNumber, deviceUuid: opts.deviceUuid ?? newUuid(), role: slot, device, path: opts.path,
      dataSize: Math.floor((device.size - this.vol.g.dataOffset) / 512), recoveryOffset: 0,
    });
    s.device = device;
    s.recovered = new RangeSet();
    s.state = 'rebuilding';
    this.refresh();
    await this.commit({ kind: 'rebuilding', slot, path: opts.path });
  }

  /** Records the recovered prefix of a rebuilding slot in its superblock (md's recovery_offset). */
  async checkpointRecovery(slot: number): Promise<void> {
    const s = this.rebuilding(slot);
    const disk = this.vol.meta.diskInSlot(slot);
    const sectors = s.recovered.prefix() * (this.vol.g.chunk / 512);
    await this.syncRebuilt(slot);
    if (disk) disk.recoveryOffset = sectors;
    await this.commit({ kind: 'recovered', slot, path: disk?.path, sectors });
  }

  /**
   * The rebuilt data durable on the member before any superblock claims it (a recovery offset,
   * or in sync): else a power loss could keep the claim and lose the data under it. One
   * fdatasync covers the file whichever process wrote it. A member that fails it is failed.
   */
  private async syncRebuilt(slot: number): Promise<void> {
    const dev = this.vol.slots[slot]?.device;
    if (!dev) return;
    try {
      await dev.flush();
    } catch (err) {
      await this.memberFailed(slot, `flush of rebuilt data failed: ${(err as Error).message}`);
      throw err;
    }
  }

  /** The rebuilt member joins the array as in sync: every stripe must be recovered. */
  async finishRebuild(slot: number): Promise<void> {
    const s = this.rebuilding(slot);
    const left = this.vol.g.stripes - s.recovered.covered(this.vol.g.stripes);
    if (left > 0) throw new NbdraidError('EBUSY', `array ${this.vol.name}`, `slot ${slot} still has ${left} stripes to rebuild`);
    // Recorded first: a store may refuse it (the member was failed meanwhile). Until the slot is
    // marked active, every stripe of it is recovered, so it serves exactly as an active one.
    await this.syncRebuilt(slot);
    const disk = this.vol.meta.diskInSlot(slot);
    const offset = disk?.recoveryOffset;
    if (disk) disk.recoveryOffset = undefined;
    try {
      await this.commit({ kind: 'rebuilt', slot, path: disk?.path });
    } catch (err) {
      if (disk) disk.recoveryOffset = offset;
      throw err;
    }
    if (s.state !== 'rebuilding') return; // failed while the commit ran
    s.state = 'active';
    this.refresh();
    this.log(`array ${this.vol.name}: member ${slot} rebuilt and in sync`);
  }

  private rebuilding(slot: number): Slot {
    const s = this.vol.slots[slot];
    if (s?.state !== 'rebuilding') throw new NbdraidError('EINVAL', `array ${this.vol.name}`, `slot ${slot} is not being rebuilt`);
    return s;
  }

  private async markFaulty(s: Slot, reason: string): Promise<void> {
    s.state = 'faulty';
    this.refresh();
    const disk = this.vol.meta.diskInSlot(s.index);
    if (disk) {
      disk.role = ROLE_FAULTY;
      disk.recoveryOffset = undefined;
    }
    this.log(`array ${this.vol.name}: member ${s.index}${disk?.path ? ` (${disk.path})` : ''} marked faulty: ${reason}; running degraded`, 'warn');
    this.vol.emit('member-failed', s.index, reason);
    this.opts.onMemberFailed?.(s.index, reason, disk?.path);
    await this.commit({ kind: 'failed', slot: s.index, path: disk?.path, reason });
  }

  private goOffline(reason: string): void {
    if (this.offlineReason !== undefined) return;
    this.offlineReason = reason;
    this.log(`array ${this.vol.name}: OFFLINE: ${reason}; every request now fails with EIO (re-assemble after replacing members)`, 'error');
  }

  private async ensureDirty(): Promise<void> {
    if (this.opts.trackClean === false) return;
    if (!this.vol.meta.clean && !this.dirtying) return;
    if (!this.dirtying) {
      this.vol.meta.clean = false;
      this.dirtying = this.commit();
    }
    await this.dirtying;
  }

  private scheduleClean(): void {
    if (this.opts.trackClean === false || this.closed || this.vol.meta.clean) return;
    this.cleanTimer = setTimeout(() => void this.markClean().catch(() => undefined), this.opts.cleanDelayMs ?? 1000);
    this.cleanTimer.unref();
  }

  /** Idle: make every write durable, then record the array clean. */
  private async markClean(): Promise<void> {
    if (this.writesInFlight > 0 || this.offlineReason !== undefined || this.vol.meta.clean) return;
    await this.flush();
    if (this.writesInFlight > 0 || this.vol.meta.clean) return;
    this.vol.meta.clean = true;
    this.dirtying = undefined;
    await this.commit();
  }

  /**
   * fdatasync every member in the array; a member that fails it is failed. Every member, not only
   * those this process wrote: FLUSH is about the volume, and other controllers' acknowledged writes
   * sit in the same members' caches. Each flush issues its own member flushes, so a flush that
   * arrives while another is in progress never replies before the data it covers is durable.
   */
  async flush(): Promise<void> {
    this.check();
    const slots = this.vol.slots.filter((s) => s.device && (s.state === 'active' || s.state === 'rebuilding')).map((s) => s.index);
    const rs = await Promise.allSettled(slots.map((s) => this.vol.slots[s].device?.flush()));
    for (const [i, r] of rs.entries()) {
      if (r.status === 'rejected') await this.memberFailed(slots[i], `flush failed: ${(r.reason as Error)?.message}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.cleanTimer);
    try {
      if (this.offlineReason === undefined) {
        await this.flush();
        if (this.opts.trackClean !== false && !this.vol.meta.clean) {
          this.vol.meta.clean = true;
          await this.commit();
        }
      }
      await this.chain;
    } finally {
      this.closed = true;
      await Promise.allSettled(this.vol.slots.map((s) => s.device?.close()));
      await this.opts.onClose?.();
    }
  }

  private log(line: string, level: LogLevel = 'info'): void {
    (this.opts.log ?? ((l: string) => process.stderr.write(`nbdraid: ${l}\n`)))(line, level);
  }
}
