// PayloadBudget: the server-wide bound on request payload bytes held in memory (being received or
// waiting for the device). A payload is charged in full before its buffer exists and released when
// its request is done; while the budget is spent, connections wanting more wait in arrival order,
// their sockets paused, so memory stays bounded whatever the clients do.

export interface BudgetWaiter {
  /** Called when the budget may fit this waiter now; it retries take() (or stays queued). */
  wake(): void;
}

export class PayloadBudget {
  private used = 0;
  private peak = 0;
  private readonly queue: BudgetWaiter[] = [];

  constructor(readonly total: number) {}

  get inUse(): number {
    return this.used;
  }

  get peakInUse(): number {
    return this.peak;
  }

  /**
   * Charges `n` bytes if they fit and nobody queued earlier waits; otherwise queues `who` (once)
   * and returns false. A payload larger than the whole budget fits when nothing else is charged.
   */
  take(n: number, who: BudgetWaiter): boolean {
    const first = this.queue.length === 0 || this.queue[0] === who;
    if (!first || (this.used + n > this.total && this.used > 0)) {
      if (!this.queue.includes(who)) this.queue.push(who);
      return false;
    }
    if (this.queue[0] === who) this.queue.shift();
    this.charge(n);
    return true;
  }

  /** Charges `n` bytes whatever the budget says (bytes already held; the caller bounds them). */
  charge(n: number): void {
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
  }

  release(n: number): void {
    this.used -= n;
    // Wake waiters in order while the one at the head takes its share.
    while (this.queue.length > 0) {
      const head = this.queue[0];
      head.wake();
      if (this.queue[0] === head) break;
    }
  }

  /** `who` stops waiting (its connection closed). */
  cancel(who: BudgetWaiter): void {
    const i = this.queue.indexOf(who);
    if (i < 0) return;
    this.queue.splice(i, 1);
    if (i === 0) this.release(0);
  }
}
