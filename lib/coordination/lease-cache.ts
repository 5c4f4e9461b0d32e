// The holder's side of region leases, on the I/O path. A held lease lives in memory: acquiring
// it again costs no SQL. When another controller wants a region, new local acquirers queue, the
// in-flight I/O on the region drains, and at that safe point the lease is handed over. Every
// statement runs through LeaseOps (the coordination thread): this thread runs no SQL and never
// waits for a lock or an fsync. A waiter learns of grants by polling when the database changed
// (the coordinator's ChangeSource) and every probeMs, when it also reaps a holder that died.
//
// Ordering: LeaseOps answers in call order, and only a holder changes the row it holds, so an
// answer is read against the region's state when it arrives: a region still ASKING or HANDING
// has its own answer yet to come, and a poll's word about it is older than that and ignored.
//
// Write intent (the dirty bit before the first write) is WriteIntent's (write-intent.ts).
//
// Deadlock rule: an I/O spanning several regions acquires them in ascending order (acquireAll).
import { NbdraidError } from '../errors.js';
import type { ChangeSource } from './change-watcher.js';
import type { AcquireOutcome } from './leases.js';
import type { LeaseOps, LeasePoll } from './lease-ops.js';
import { WriteIntent } from './write-intent.js';

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
}

/**
 * A region's lease, as this controller sees it:
 * - FREE: not ours, nothing asked;
 * - ASKING: a take is in flight;
 * - WAITING: another controller holds it and knows we want it; polls tell when it is ours;
 * - HELD: ours; local I/O enters without SQL;
 * - DRAINING: ours but wanted: new local I/O queues, and at the last release it is handed over;
 * - HANDING: the give-back is in flight.
 */
type LeaseState = 'free' | 'asking' | 'waiting' | 'held' | 'draining' | 'handing';

interface Waiter { write: boolean; resolve: () => void; reject: (e: Error) => void }

interface Region {
  state: LeaseState;
  /** Local waiters queued when the lease arrived are still to be served before a hand-over. */
  owed: boolean;
  inflight: number;
  queue: Waiter[];
}

const READY: Promise<void> = Promise.resolve();
/** Waiters fail once the coordination object has not answered a poll for this long (ms). */
const FAIL_AFTER_MS = 10_000;
const OURS: readonly LeaseState[] = ['held', 'draining'];

export class LeaseCache {
  private readonly regions = new Map<number, Region>();
  /** Regions in WAITING. */
  private readonly waiting = new Set<number>();
  private readonly intent: WriteIntent;
  private probeTimer: NodeJS.Timeout | undefined;
  private lastProbe = 0;
  /** A poll is in flight; `repoll`: something changed since it was sent. */
  private polling = false;
  private repoll = false;
  /** When polls began to fail, while they do. */
  private failingSince: number | undefined;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly probeMs: number;

  constructor(
    private readonly ops: LeaseOps,
    private readonly arrayName: string,
    watcher: ChangeSource,
    private readonly opts: LeaseCacheOptions = {},
  ) {
    this.probeMs = opts.probeMs ?? 50;
    this.intent = new WriteIntent(ops, {
      idleCleanMs: opts.idleCleanMs ?? 1000,
      afterDirty: opts.afterDirty,
      afterClean: opts.afterClean,
      onMarked: (regions, err) => this.marked(regions, err),
    });
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
    if (!r || r.state !== 'held' || r.queue.length > 0 || (opts.write && !this.intent.isDirty(region))) return false;
    this.enter(region, r, opts.write);
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
    if (opts.write) this.intent.leaveWrite(region);
    if (r.inflight === 0 && r.state === 'draining') this.pump(region);
  }

  releaseAll(regions: number[], opts: { write: boolean }): void {
    for (const r of new Set(regions)) this.release(r, opts);
  }

  /** Regions held in memory right now. */
  held(): number[] {
    return [...this.regions].filter(([, r]) => OURS.includes(r.state)).map(([n]) => n).sort((a, b) => a - b);
  }

  isDirty(region: number): boolean {
    return this.intent.isDirty(region);
  }

  /** Another controller asked for `region`, which we hold: holders should let it go soon. */
  isWanted(region: number): boolean {
    return this.regions.get(region)?.state === 'draining';
  }

  /** True when a flush now could let a write-intent bit be cleared (WriteIntent.hasIdleDirty). */
  hasIdleDirty(): boolean {
    return this.intent.hasIdleDirty();
  }

  /** Call before flushing the members; pass the token to flushed() once the flush succeeded. */
  flushToken(): number {
    return this.intent.flushToken();
  }

  /** The flush begun at `token` succeeded: untouched regions may have their bit cleared when idle. */
  flushed(token: number): void {
    this.intent.flushed(token);
  }

  /** Clears now the bits of flushed regions with no write since; returns them. */
  cleanFlushed(): Promise<number[]> {
    return this.intent.cleanFlushed();
  }

  /**
   * Gives every lease back (flushed clean regions cleared first); pending acquires fail with
   * ESHUTDOWN. Dirty leases stay dirty in the database for the next holder or a resync. The
   * give-back is asked after every call already made, so a take still in flight is given back too.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.probeTimer);
    const clean = this.intent.close();
    // The regions stay for the releases of I/O still in flight; nothing is ours any more.
    for (const r of this.regions.values()) {
      for (const w of r.queue) w.reject(this.closedError());
      r.queue = [];
      r.state = 'free';
    }
    this.waiting.clear();
    await this.ops.closeAll(clean);
    if (clean.length > 0) this.opts.afterClean?.();
  }

  /** The database changed: ask what it means for us (one poll at a time). */
  tick(): void {
    if (this.closed) return;
    if (this.polling) {
      this.repoll = true;
      return;
    }
    const probe = Date.now() - this.lastProbe >= this.probeMs;
    if (probe) this.lastProbe = Date.now();
    const waiting = [...this.waiting];
    this.polling = true;
    this.repoll = false;
    this.ops.poll(waiting, probe).then((p) => this.polled(p), (err: Error) => this.pollFailed(waiting, err)).finally(() => {
      this.polling = false;
      if (this.repoll) this.tick();
      this.updateProbeTimer();
    });
  }

  /** Reads a poll against each region's state now (see Ordering above). */
  private polled(p: LeasePoll): void {
    this.failingSince = undefined;
    if (this.closed) return;
    for (const { region, dirty } of p.granted) {
      const s = this.regions.get(region)?.state;
      if (s === 'waiting' || s === 'free') this.take(region, dirty);
    }
    for (const { region, dirty } of p.wanted) {
      const r = this.region(region);
      // Ours in the database, not here: handed to us while we waited, or after we stopped.
      if (r.state === 'waiting' || r.state === 'free') this.take(region, dirty);
      if (r.state === 'held') {
        r.state = 'draining';
        try {
          this.opts.onWanted?.(region);
        } catch {
          // a listener's failure does not hold the hand-over up
        }
      }
    }
    for (const n of [...p.granted, ...p.wanted].map((l) => l.region)) this.pump(n);
  }

  /**
   * The coordination thread could not answer a poll: the waiters keep waiting (the probe timer
   * polls again), unless polls have failed for FAIL_AFTER_MS in a row; then they fail, so that
   * nobody hangs on a coordination object that is gone.
   */
  private pollFailed(waiting: number[], err: Error): void {
    this.failingSince ??= Date.now();
    if (Date.now() - this.failingSince < FAIL_AFTER_MS) return;
    for (const n of waiting) {
      const r = this.regions.get(n);
      if (r?.state === 'waiting') this.fail(n, r, err);
    }
  }

  private ask(n: number, r: Region): void {
    r.state = 'asking';
    this.ops.take(n).then((out) => this.answered(n, out), (err: Error) => this.fail(n, r, err));
  }

  private answered(n: number, out: AcquireOutcome): void {
    if (this.closed) return; // closeAll, asked after this take, gives it back
    const r = this.region(n);
    if (out.granted) {
      this.take(n, out.dirty);
      this.pump(n);
      return;
    }
    r.state = 'waiting';
    this.waiting.add(n);
    this.updateProbeTimer();
  }

  private take(n: number, dirty: boolean): void {
    const r = this.region(n);
    this.waiting.delete(n);
    r.state = 'held';
    r.owed = r.queue.length > 0;
    this.intent.adopt(n, dirty);
  }

  /** The lease request failed: its waiters get the error; the next acquirer asks afresh. */
  private fail(n: number, r: Region, err: Error): void {
    if (this.closed) return;
    this.waiting.delete(n);
    r.state = 'free';
    for (const w of r.queue) w.reject(err);
    r.queue = [];
    this.regions.delete(n);
  }

  /**
   * Moves one region forward: ask for it, serve local waiters, or hand it over when drained.
   * Waiters queued when a lease arrives are served before it can be handed on (`owed`), so two
   * controllers contending for a region both make progress.
   */
  private pump(n: number): void {
    const r = this.region(n);
    switch (r.state) {
      case 'free':
        if (r.queue.length > 0 && !this.closed) this.ask(n, r);
        else if (r.queue.length === 0 && r.inflight === 0) this.regions.delete(n);
        return;
      case 'held':
        this.serve(n, r);
        return;
      case 'draining':
        if (r.owed) this.serve(n, r);
        if (!r.owed && r.inflight === 0 && !this.intent.busy(n)) this.handOver(n, r);
        return;
      default:
        return; // ASKING, WAITING, HANDING: an answer moves it on
    }
  }

  private serve(n: number, r: Region): void {
    const dirty = this.intent.isDirty(n);
    const ready = r.queue.filter((w) => !w.write || dirty);
    r.queue = r.queue.filter((w) => w.write && !dirty);
    for (const w of ready) {
      this.enter(n, r, w.write);
      w.resolve();
    }
    if (r.queue.length > 0) this.intent.request(n);
    else r.owed = false;
  }

  private handOver(n: number, r: Region): void {
    r.state = 'handing';
    r.owed = false;
    this.intent.forget(n);
    const done = (): void => {
      if (this.closed || r.state !== 'handing') return;
      r.state = 'free';
      this.pump(n);
    };
    // A give-back that failed leaves the row ours and wanted: the next poll hands it over again.
    this.ops.giveBack(n).then(done, done);
  }

  /** A write-intent commit ended: its writers go on, or fail (the next writer asks again). */
  private marked(regions: number[], err?: Error): void {
    for (const n of regions) {
      const r = this.regions.get(n);
      if (!r) continue;
      if (err) {
        for (const w of r.queue.filter((q) => q.write)) w.reject(err);
        r.queue = r.queue.filter((q) => !q.write);
      }
      this.pump(n);
    }
  }

  private enter(n: number, r: Region, write: boolean): void {
    r.inflight++;
    if (write) this.intent.enterWrite(n);
  }

  private updateProbeTimer(): void {
    if (this.waiting.size > 0 && !this.probeTimer && !this.closed) {
      this.probeTimer = setInterval(() => this.tick(), this.probeMs);
    } else if (this.waiting.size === 0 && this.probeTimer) {
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
    }
  }

  private region(n: number): Region {
    let r = this.regions.get(n);
    if (!r) {
      r = { state: 'free', owed: false, inflight: 0, queue: [] };
      this.regions.set(n, r);
    }
    return r;
  }

  private closedError(): NbdraidError {
    return new NbdraidError('ESHUTDOWN', `leases of ${this.arrayName}`, 'the lease cache is closed');
  }
}
