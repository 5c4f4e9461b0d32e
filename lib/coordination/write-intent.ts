// The write-intent bits of the regions this controller holds. Before the first write to a clean
// region its bit is committed durably (markDirty, batched: one synced commit per turn of the
// loop); the bit is cleared lazily: flushToken() before a flush of the members, flushed(token)
// after it, and a region with no write since the token is cleared once it has been idle for
// idleCleanMs. The lease protocol (lease-cache.ts) decides which regions are held; this class
// only keeps their bits.

/** Where the bits are committed; markDirty resolves once they are durable. */
export interface WriteIntentCommits {
  markDirty(regions: number[]): Promise<void>;
  markClean(regions: number[]): Promise<void>;
}

export interface WriteIntentOptions {
  /** How long a flushed dirty region stays idle before its bit is cleared (ms). */
  idleCleanMs: number;
  /**
   * After bits were committed and before any write to those regions may start: the array's
   * durable state follows (the superblocks say active). A rejection fails those writers.
   */
  afterDirty?: () => Promise<void>;
  /** After bits were cleared (the array may now be clean). */
  afterClean?: () => void;
  /** The commit of `regions` ended: their writers may go on (err: they fail). */
  onMarked(regions: number[], err?: Error): void;
}

/**
 * A held region's bit: CLEAN (no bit in the database), QUEUED (asked for, commit not begun),
 * MARKING (commit in flight: writers still wait), DIRTY (committed; writes go straight on).
 */
type BitState = 'clean' | 'queued' | 'marking' | 'dirty';

interface Bit {
  state: BitState;
  /** Writes in flight. */
  writes: number;
  lastWriteSeq: number;
  /** When the last write finished (ms since the epoch); 0 before any. */
  lastWriteAt: number;
  /** A flush covered every write: clear the bit at `at` if no write came since `seq`. */
  clean?: { seq: number; at: number };
}

export class WriteIntent {
  private readonly bits = new Map<number, Bit>();
  private readonly flushes = new Map<number, Map<number, number>>();
  private seq = 0;
  private batch: number[] = [];
  private cleanTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly commits: WriteIntentCommits, private readonly opts: WriteIntentOptions) {}

  /** A lease arrived for `n`, with the bit the database holds for it. */
  adopt(n: number, dirty: boolean): void {
    // A fresh sequence number: a flush token taken before the lease last left must not match it
    // (the peer may have written meanwhile, after that flush began).
    this.bits.set(n, { state: dirty ? 'dirty' : 'clean', writes: 0, lastWriteSeq: ++this.seq, lastWriteAt: 0 });
  }

  /** The lease of `n` left (handed over or given back): its bit travels with the database row. */
  forget(n: number): void {
    this.bits.delete(n);
  }

  isDirty(n: number): boolean {
    return this.bits.get(n)?.state === 'dirty';
  }

  /** A commit for `n` is asked for or in flight: the lease may not be handed over yet. */
  busy(n: number): boolean {
    const s = this.bits.get(n)?.state;
    return s === 'queued' || s === 'marking';
  }

  /** Asks for the bit of held region `n`; onMarked tells when writers may go on. */
  request(n: number): void {
    const b = this.bits.get(n);
    if (!b || b.state !== 'clean') return;
    b.state = 'queued';
    if (this.batch.length === 0) setImmediate(() => this.commitBatch());
    this.batch.push(n);
  }

  enterWrite(n: number): void {
    const b = this.bits.get(n);
    if (!b) return;
    b.writes++;
    b.lastWriteSeq = ++this.seq;
    b.clean = undefined;
  }

  leaveWrite(n: number): void {
    const b = this.bits.get(n);
    if (!b) return;
    b.writes--;
    b.lastWriteAt = Date.now();
  }

  /**
   * True when a flush now could let a bit be cleared: some dirty region has no write in flight
   * and none for idleCleanMs. Regions written all the time keep their bit, so a steady stream of
   * writes does not pay for a flush and a fresh synced commit every few seconds.
   */
  hasIdleDirty(): boolean {
    const before = Date.now() - this.opts.idleCleanMs;
    for (const b of this.bits.values()) if (b.state === 'dirty' && b.writes === 0 && b.lastWriteAt <= before) return true;
    return false;
  }

  /** Call before flushing the members; pass the token to flushed() once the flush succeeded. */
  flushToken(): number {
    const token = ++this.seq;
    const snapshot = new Map<number, number>();
    for (const [n, b] of this.bits) if (b.state === 'dirty' && b.writes === 0) snapshot.set(n, b.lastWriteSeq);
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
      const b = this.bits.get(n);
      if (b && b.state === 'dirty' && b.lastWriteSeq === seq && !b.clean) b.clean = { seq, at: Math.max(now, b.lastWriteAt + this.opts.idleCleanMs) };
    }
    this.scheduleClean();
  }

  /** Dirty regions a flush covered that saw no write since, whatever their idle time. */
  flushedIdle(): number[] {
    return [...this.bits].filter(([, b]) => b.state === 'dirty' && b.clean?.seq === b.lastWriteSeq && b.writes === 0).map(([n]) => n);
  }

  /**
   * Clears now the bits of regions that a flush covered and that saw no write since (a controller
   * stopping cleanly: its members are flushed). Returns the regions.
   */
  async cleanFlushed(): Promise<number[]> {
    const due = this.flushedIdle();
    await this.clearBits(due);
    return due;
  }

  /** No more commits; returns the regions whose bits the caller should clear on its way out. */
  close(): number[] {
    this.closed = true;
    clearTimeout(this.cleanTimer);
    const due = this.flushedIdle();
    this.forgetBits(due);
    return due;
  }

  private commitBatch(): void {
    const regions = this.batch.filter((n) => this.bits.get(n)?.state === 'queued');
    this.batch = [];
    if (regions.length === 0) return;
    if (this.closed) {
      for (const n of regions) this.bits.get(n)!.state = 'clean';
      this.opts.onMarked(regions, new Error('closed'));
      return;
    }
    for (const n of regions) this.bits.get(n)!.state = 'marking';
    const settle = (state: BitState, err?: Error): void => {
      for (const n of regions) {
        const b = this.bits.get(n);
        if (b?.state === 'marking') b.state = state;
      }
      this.opts.onMarked(regions, err);
    };
    this.markDurably(regions).then(() => settle('dirty'), (err: Error) => settle('clean', err));
  }

  /** The bits durable in the database, then the array's state following them (afterDirty). */
  private async markDurably(regions: number[]): Promise<void> {
    await this.commits.markDirty(regions);
    await this.opts.afterDirty?.();
  }

  /**
   * Clears the bits of `due` here, then in the database, then tells afterClean. A write arriving
   * meanwhile asks for its bit again, and that commit lands after this one. A clear that fails
   * leaves the bits set in the database: more to resync, nothing lost.
   */
  private async clearBits(due: number[]): Promise<void> {
    if (due.length === 0) return;
    this.forgetBits(due);
    try {
      await this.commits.markClean(due);
    } catch (err) {
      if (!this.closed) throw err;
      return;
    }
    this.opts.afterClean?.();
  }

  private forgetBits(regions: number[]): void {
    for (const n of regions) {
      const b = this.bits.get(n);
      if (!b) continue;
      b.state = 'clean';
      b.clean = undefined;
    }
  }

  /** Sweeps when the earliest flushed region becomes due (its clean.at already counts the idle time). */
  private scheduleClean(): void {
    if (this.cleanTimer || this.closed) return;
    let due = Infinity;
    for (const b of this.bits.values()) if (b.clean) due = Math.min(due, b.clean.at);
    if (due === Infinity) return;
    this.cleanTimer = setTimeout(() => {
      this.cleanTimer = undefined;
      this.sweepClean();
    }, Math.max(0, due - Date.now()) + 5);
  }

  /** Clears the bits of regions flushed, untouched since, and idle long enough. */
  private sweepClean(): void {
    const now = Date.now();
    const due: number[] = [];
    let later = false;
    for (const [n, b] of this.bits) {
      if (!b.clean || b.state !== 'dirty') continue;
      if (b.clean.seq !== b.lastWriteSeq || b.writes > 0) b.clean = undefined;
      else if (b.clean.at <= now) due.push(n);
      else later = true;
    }
    this.clearBits(due).catch(() => undefined); // the bits stay set: resynced later, nothing lost
    if (later) this.scheduleClean();
  }
}
