// A controller's life on a database that cannot see its process (PostgreSQL across hosts): its
// heartbeat row. Others reap it once the row is older than T by the database clock. So it must
// stop touching members before then, judged by its own monotonic clock from the moment it SENT
// its last heartbeat that was answered (the row is stamped later than that, never earlier):
//
//   LIVE     heartbeats answered
//   OVERDUE  none answered for `holdAfterMs` (T/2): member I/O is held; an answer brings LIVE back,
//            for an answered heartbeat proves that no one reaped this controller meanwhile
//   LOST     none answered for T, or the database says the row was reaped: others may own its
//            regions and partitions now; member I/O stays stopped for good, and the process
//            ends (it may register again as a new controller)
//
// The margin (T/2) covers the heartbeat's own time in flight and a rate difference between the
// host's clock and the database's; docs/deployment.md states the assumption.
export type LifeState = 'live' | 'overdue' | 'lost';

export interface LifeBoundOptions {
  /** T: the database reaps a row older than this (ms). */
  deadAfterMs: number;
  /** Checks run this often (ms). */
  checkMs?: number;
  onChange(state: LifeState, why: string): void;
  now?: () => number;
  /** When the registration that stamped the row was sent (default: now). */
  from?: number;
}

export class LifeBound {
  private current: LifeState = 'live';
  private renewedFrom: number;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly opts: LifeBoundOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.renewedFrom = opts.from ?? this.now();
    this.timer = setInterval(() => this.check(), opts.checkMs ?? 50);
    this.timer.unref();
  }

  get state(): LifeState {
    return this.current;
  }

  get holdAfterMs(): number {
    return this.opts.deadAfterMs / 2;
  }

  /** The time a heartbeat is sent: pass it to renewed() when it is answered. */
  sending(): number {
    return this.now();
  }

  /** A heartbeat sent at `sentAt` was answered: the row was live and is now fresh. */
  renewed(sentAt: number): void {
    if (this.current === 'lost') return;
    this.renewedFrom = Math.max(this.renewedFrom, sentAt);
    this.check();
  }

  /** The database says this controller's row is no longer live. */
  reaped(why: string): void {
    this.set('lost', why);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Moves by the time since the last answered heartbeat's send. */
  check(): void {
    if (this.current === 'lost') return;
    const silent = this.now() - this.renewedFrom;
    if (silent >= this.opts.deadAfterMs) this.set('lost', `no heartbeat answered for ${Math.round(silent)} ms (T = ${this.opts.deadAfterMs} ms): others may have taken over`);
    else if (silent >= this.holdAfterMs) this.set('overdue', `no heartbeat answered for ${Math.round(silent)} ms (member I/O held from T/2 = ${this.holdAfterMs} ms)`);
    else this.set('live', 'heartbeat answered again');
  }

  private set(state: LifeState, why: string): void {
    if (state === this.current || this.current === 'lost') return;
    this.current = state;
    if (state === 'lost') this.stop();
    this.opts.onChange(state, why);
  }
}
