// The holder's side of region leases, on the I/O path. A held lease lives in memory: acquiring
// it again costs no SQL. When another controller wants a region, new local acquirers queue, the
// in-flight I/O on the region drains, and at that safe point the lease is handed over. A waiter
// learns of grants through data_version (ChangeWatcher) and probes a holder's flock to reap it
// if it died.
//
// Write intent: before the first write to a region that is clean, its dirty bit is committed
// with synchronous=FULL. The bit is cleared lazily: flushToken() before a flush of the members,
// flushed(token) after it; a region with no write since the token is cleared once it has seen no
// write for idleCleanMs.
//
// Deadlock rule: an I/O spanning several regions acquires them in ascending order (acquireAll).
import { NbdraidError } from '../errors.js';
import type { ChangeWatcher } from './change-watcher.js';
import type { ControllerRegistry } from './controllers.js';
import type { LeaseStore } from './leases.js';

export interface LeaseCacheOptions {
  /** Told when another controller wants a region we hold (e.g. to stop background work early). */
  onWanted?: (region: number) => void;
  /** How long a flushed dirty region stays idle before its bit is cleared (ms). */
  idleCleanMs?: number;
  /** How often a waiter re-checks and probes the holder's liveness (ms). */
  probeMs?: number;
  /**
   * After write-intent bits were committed and before any write to those regions may start: the
   * array's durable state follows (the superblocks say active). A rejection fails those writers.
   */
  afterDirty?: () => Promise<void>;
  /** After write-intent bits were cleared (the array may now be clean). */
  afterClean?: () => void;
  /**
   * Where write-intent commits run when not on this thread (the coordination thread): the
   * synced commit of markDirty then never blocks the I/O thread. Without it, the store's own
   * synchronous calls are used.
   */
  writeIntent?: WriteIntentStore;
}

/** The two write-intent commits, asynchronous; markDirty resolves once the bits are durable. */
export interface WriteIntentStore {
  markDirty(regions: number[]): Promise<void>;
  markClean(regions: number[]): Promise<void>;
}

interface Waiter { write: boolean; resolve: () => void; reject: (e: Error) => void }

interface Region {
  held: boolean;
  dirty: boolean;
  wanted: boolean;
  /** Local waiters queued when the lease arrived are still to be served. */
  owed: boolean;
  inflight: number;
  writes: number;
  lastWriteSeq: number;
  /** When the last write finished (ms since the epoch); 0 before any. A write in flight counts in `writes`. */
  lastWriteAt: number;
  queue: Waiter[];
  /** Set after a flush covered every write of the region: clear the bit at `cleanAt` if still so. */
  clean?: { seq: number; at: number };
}

const READY: Promise<void> = Promise.resolve();

export class LeaseCache {
  private readonly regions = new Map<number, Region>();
  private readonly pending = new Set<number>();
  private readonly toDirty = new Set<number>();
  /** Regions whose bit is committed while afterDirty runs: their writers still wait. */
  private readonly dirtying = new Set<number>();
  private readonly flushes = new Map<number, Map<number, number>>();
  private seq = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  private cleanTimer: NodeJS.Timeout | undefined;
  private lastProbe = 0;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly idleCleanMs: number;
  private readonly probeMs: number;

  constructor(
    private readonly store: LeaseStore,
    private readonly controllers: ControllerRegistry,
    private readonly controller: number,
    watcher: ChangeWatcher,
    private readonly opts: LeaseCacheOptions = {},
  ) {
    this.idleCleanMs = opts.idleCleanMs ?? 1000;
    this.probeMs = opts.probeMs ?? 50;
    this.unsubscribe = watcher.subscribe(() => this.tick());
  }

  /**
   * Holds `region` for one I/O until release(). Resolves at once (no SQL) when the lease is
   * cached, not wanted by anyone, and - for a write - already dirty.
   */
  acquire(region: number, opts: { write: boolean }): Promise<void> {
    if (this.tryAcquire(region, opts)) return READY;
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      this.region(region).queue.push({ write: opts.write, resolve, reject });
      this.pump(region);
    });
  }

  /** The synchronous fast path of acquire: true when held for this I/O without waiting. */
  tryAcquire(region: number, opts: { write: boolean }): boolean {
    const r = this.regions.get(region);
    if (!r || !r.held || r.wanted || r.queue.length > 0 || (opts.write && !r.dirty)) return false;
    this.enter(r, opts.write);
    return true;
  }

  /** Acquires several regions in ascending order (the order that cannot deadlock). */
  async acquireAll(regions: number[], opts: { write: boolean }): Promise<void> {
    for (const r of [...new Set(regions)].sort((a, b) => a - b)) await this.acquire(r, opts);
  }

  /** The I/O that acquired `region` finished; at the last one a wanted lease is handed over. */
  release(region: number, opts: { write: boolean }): void {
    const r = this.regions.get(region);
    if (!r || r.inflight === 0) throw new NbdraidError('EINVAL', `region ${region}`, 'released more often than acquired');
    r.inflight--;
    if (opts.write) {
      r.writes--;
      r.lastWriteAt = Date.now();
    }
    if (r.inflight === 0 && r.wanted) this.pump(region);
  }

  releaseAll(regions: number[], opts: { write: boolean }): void {
    for (const r of new Set(regions)) this.release(r, opts);
  }

  /** Regions held in memory right now. */
  held(): number[] {
    return [...this.regions].filter(([, r]) => r.held).map(([n]) => n).sort((a, b) => a - b);
  }

  isDirty(region: number): boolean {
    return this.regions.get(region)?.dirty ?? false;
  }

  /**
   * True when a flush now could let a write-intent bit be cleared: some held dirty region has no
   * write in flight and none for idleCleanMs. Regions written all the time keep their bit, so a
   * steady stream of writes does not pay for a flush and a fresh synced commit every few seconds.
   */
  hasIdleDirty(): boolean {
    const before = Date.now() - this.idleCleanMs;
    for (const r of this.regions.values()) {
      if (r.held && r.dirty && r.writes === 0 && r.lastWriteAt <= before) return true;
    }
    return false;
  }

  /** Call before flushing the members; pass the token to flushed() once the flush succeeded. */
  flushToken(): number {
    const token = ++this.seq;
    const snapshot = new Map<number, number>();
    for (const [n, r] of this.regions) if (r.held && r.dirty && r.writes === 0) snapshot.set(n, r.lastWriteSeq);
    this.flushes.set(token, snapshot);
    return token;
  }

  /** The flush begun at `token` succeeded: regions untouched since may have their bit cleared when idle. */
  flushed(token: number): void {
    const snapshot = this.flushes.get(token);
    for (const t of this.flushes.keys()) if (t <= token) this.flushes.delete(t);
    if (!snapshot) return;
    const now = Date.now();
    for (const [n, seq] of snapshot) {
      const r = this.regions.get(n);
      if (r && r.lastWriteSeq === seq && !r.clean) r.clean = { seq, at: Math.max(now, r.lastWriteAt + this.idleCleanMs) };
    }
    this.scheduleClean();
  }

  /**
   * Gives every lease back (flushed clean regions cleared first); pending acquires fail with
   * ESHUTDOWN. Dirty leases stay dirty in the database for the next holder or a resync.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.probeTimer);
    clearTimeout(this.cleanTimer);
    const due = this.flushedIdle();
    if (due.length > 0) {
      this.store.markClean(due); // here, before the leases go back below
      this.forgetDirty(due);
      this.opts.afterClean?.();
    }
    for (const r of this.regions.values()) {
      for (const w of r.queue) w.reject(this.closedError());
      r.queue = [];
      r.held = false;
    }
    // Withdraw our requests first, then give back whatever the database says we hold,
    // including a lease handed to us while we were closing.
    this.store.unwantAll();
    for (const n of this.store.held()) this.store.yield(n);
    this.pending.clear();
  }

  /**
   * Clears now, whatever their idle time, the bits of regions that a flush covered and that saw no
   * write since (a controller stopping cleanly: its members are flushed). Returns the regions.
   */
  async cleanFlushed(): Promise<number[]> {
    const due = this.flushedIdle();
    await this.clearBits(due);
    return due;
  }

  private flushedIdle(): number[] {
    return [...this.regions].filter(([, r]) => r.held && r.dirty && r.clean?.seq === r.lastWriteSeq && r.writes === 0).map(([n]) => n);
  }

  /**
   * Clears the write-intent bits of `due` here, then in the database, then tells afterClean. A
   * write arriving meanwhile asks for its bit again, and that commit lands after this one. A
   * clear that fails leaves the bits set in the database: more to resync, nothing lost.
   */
  private async clearBits(due: number[]): Promise<void> {
    if (due.length === 0) return;
    this.forgetDirty(due);
    try {
      if (this.opts.writeIntent) await this.opts.writeIntent.markClean(due);
      else this.store.markClean(due);
    } catch (err) {
      if (!this.closed) throw err;
      return;
    }
    this.opts.afterClean?.();
  }

  private forgetDirty(regions: number[]): void {
    for (const n of regions) {
      const r = this.region(n);
      r.dirty = false;
      r.clean = undefined;
    }
  }

  /** Re-reads what others did: wanted leases of ours, grants to us, dead holders, due cleaning. */
  tick(): void {
    if (this.closed) return;
    for (const { region, dirty } of this.store.wanted()) {
      // Handed to us while we waited (or no longer wait: then it goes straight on).
      const r = this.regions.get(region)?.held ? this.region(region) : this.take(region, dirty);
      if (!r.wanted) {
        r.wanted = true;
        this.opts.onWanted?.(region);
      }
      this.pump(region);
    }
    if (this.pending.size > 0) this.retryPending();
  }

  private retryPending(): void {
    const probe = Date.now() - this.lastProbe >= this.probeMs;
    if (probe) this.lastProbe = Date.now();
    for (const n of [...this.pending]) {
      const out = this.store.tryAcquire(n);
      if (out.granted) {
        this.grant(n, out.dirty);
      } else if (probe && !this.controllers.isAlive(out.holder)) {
        this.controllers.reapDead(this.controller);
        const again = this.store.tryAcquire(n);
        if (again.granted) this.grant(n, again.dirty);
      }
    }
    this.updateProbeTimer();
  }

  private grant(n: number, dirty: boolean): void {
    this.take(n, dirty);
    this.pump(n);
  }

  private take(n: number, dirty: boolean): Region {
    this.pending.delete(n);
    const r = this.region(n);
    r.held = true;
    r.dirty = dirty;
    r.wanted = false;
    r.owed = r.queue.length > 0;
    return r;
  }

  /**
   * Moves one region forward: ask for it, serve local waiters, or hand it over when drained.
   * Waiters queued when a lease arrives are served before it can be handed on (`owed`), so two
   * controllers contending for a region both make progress.
   */
  private pump(n: number): void {
    const r = this.region(n);
    if (!r.held) {
      if (r.queue.length > 0 && !this.pending.has(n)) {
        this.pending.add(n);
        const out = this.store.tryAcquire(n);
        if (out.granted) return this.grant(n, out.dirty);
        this.updateProbeTimer();
      }
      return;
    }
    if (!r.wanted || r.owed) this.serve(n, r);
    if (r.wanted && !r.owed && r.inflight === 0 && !this.toDirty.has(n) && !this.dirtying.has(n)) this.handOver(n, r);
  }

  private serve(n: number, r: Region): void {
    const ready = r.queue.filter((w) => !w.write || r.dirty);
    r.queue = r.queue.filter((w) => w.write && !r.dirty);
    for (const w of ready) {
      this.enter(r, w.write);
      w.resolve();
    }
    if (r.queue.length > 0) this.requestDirty(n);
    else r.owed = false;
  }

  private handOver(n: number, r: Region): void {
    this.store.yield(n);
    r.held = false;
    r.wanted = false;
    r.owed = false;
    r.clean = undefined;
    if (r.queue.length > 0) this.pump(n);
    else this.regions.delete(n);
  }

  /** Batches the regions that need their dirty bit into one synced commit per turn of the loop. */
  private requestDirty(n: number): void {
    if (this.dirtying.has(n)) return;
    if (this.toDirty.size === 0) setImmediate(() => this.commitDirty());
    this.toDirty.add(n);
  }

  private commitDirty(): void {
    const regions = [...this.toDirty].filter((n) => this.regions.get(n)?.held);
    this.toDirty.clear();
    if (this.closed || regions.length === 0) return;
    for (const n of regions) this.dirtying.add(n);
    const proceed = () => {
      for (const n of regions) {
        this.dirtying.delete(n);
        const r = this.region(n);
        r.dirty = true;
        this.pump(n);
      }
    };
    this.markDirtyDurably(regions).then(proceed, (err: Error) => {
      for (const n of regions) {
        // The bit may be set, but the array's state may not show it: fail these writers; the
        // next writer asks again.
        this.dirtying.delete(n);
        this.failWriters(n, err);
        this.pump(n);
      }
    });
  }

  /** The bits durable in the database, then the array's state following them (afterDirty). */
  private async markDirtyDurably(regions: number[]): Promise<void> {
    if (this.opts.writeIntent) await this.opts.writeIntent.markDirty(regions);
    else this.store.markDirty(regions);
    await this.opts.afterDirty?.();
  }

  private failWriters(n: number, err: Error): void {
    const r = this.region(n);
    for (const w of r.queue.filter((q) => q.write)) w.reject(err);
    r.queue = r.queue.filter((q) => !q.write);
  }

  private enter(r: Region, write: boolean): void {
    r.inflight++;
    if (!write) return;
    r.writes++;
    r.lastWriteSeq = ++this.seq;
    r.clean = undefined;
  }

  /** Sweeps when the earliest flushed region becomes due (its clean.at already counts the idle time). */
  private scheduleClean(): void {
    if (this.cleanTimer || this.closed) return;
    let due = Infinity;
    for (const r of this.regions.values()) if (r.clean) due = Math.min(due, r.clean.at);
    if (due === Infinity) return;
    this.cleanTimer = setTimeout(() => {
      this.cleanTimer = undefined;
      this.sweepClean();
    }, Math.max(0, due - Date.now()) + 5);
  }

  /** Clears the dirty bit of regions flushed, untouched since, and idle long enough. */
  private sweepClean(): void {
    const now = Date.now();
    const due: number[] = [];
    let later = false;
    for (const [n, r] of this.regions) {
      if (!r.clean || !r.held || !r.dirty) continue;
      if (r.clean.seq !== r.lastWriteSeq || r.writes > 0) r.clean = undefined;
      else if (r.clean.at <= now) due.push(n);
      else later = true;
    }
    this.clearBits(due).catch(() => undefined); // the bits stay set: resynced later, nothing lost
    if (later) this.scheduleClean();
  }

  private updateProbeTimer(): void {
    if (this.pending.size > 0 && !this.probeTimer && !this.closed) {
      this.probeTimer = setInterval(() => this.retryPending(), this.probeMs);
    } else if (this.pending.size === 0 && this.probeTimer) {
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
    }
  }

  private region(n: number): Region {
    let r = this.regions.get(n);
    if (!r) {
      r = { held: false, dirty: false, wanted: false, owed: false, inflight: 0, writes: 0, lastWriteSeq: 0, lastWriteAt: 0, queue: [] };
      this.regions.set(n, r);
    }
    return r;
  }

  private closedError(): NbdraidError {
    return new NbdraidError('ESHUTDOWN', `leases of ${this.store.arrayName}`, 'the lease cache is closed');
  }
}
