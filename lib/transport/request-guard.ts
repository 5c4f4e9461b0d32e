// One connection's share of the server-wide limits in the transmission phase: its payloads charged
// to the PayloadBudget (and released when their requests are done), and the request timeout that
// drops a client which began a request (header or payload) and did not finish it in time. A
// connection idle between requests is never timed out: kernel clients sit idle for hours.
import type { BudgetWaiter, PayloadBudget } from './payload-budget.js';

/**
 * A payload this small that arrived whole with its header is admitted even while the budget is
 * spent, one such at a time per connection: its bytes are already held (one socket read), and small
 * writes of other clients are not starved by stalled large ones. Overshoot <= connections x this.
 */
export const SMALL_PAYLOAD = 64 * 1024;

export interface GuardHooks {
  /** The budget may fit the waiting payload now: read on. */
  wake(): void;
  /** A request began more than the timeout ago and has not been received whole. */
  timedOut(ms: number): void;
}

export class RequestGuard implements BudgetWaiter {
  private overdraft = 0;
  private lastOverdraft = false;
  private readonly overdrafts = new WeakSet<Buffer>();
  private timer: NodeJS.Timeout | null = null;
  private armedAt = -1;

  constructor(private readonly budget: PayloadBudget, private readonly timeoutMs: number, private readonly hooks: GuardHooks) {}

  wake(): void {
    this.hooks.wake();
  }

  /** Whether a payload of `n` bytes may get its buffer now (else the connection waits, paused). */
  admit(n: number, whole: boolean): boolean {
    this.lastOverdraft = false;
    if (this.budget.take(n, this)) return true;
    if (!whole || this.overdraft + n > SMALL_PAYLOAD) return false;
    this.budget.cancel(this);
    this.budget.charge(n);
    this.overdraft += n;
    this.lastOverdraft = true;
    return true;
  }

  /** The payload of the frame just returned by the reader (the last one admitted). */
  taken(payload: Buffer): void {
    if (this.lastOverdraft) this.overdrafts.add(payload);
    this.lastOverdraft = false;
  }

  /** Its request is done (served, refused or dropped). */
  release(payload: Buffer): void {
    if (this.overdrafts.delete(payload)) this.overdraft -= payload.length;
    this.budget.release(payload.length);
  }

  /**
   * `receiving`: a request has begun arriving and is not complete, and it is up to the client (we
   * read). `frames`: requests received so far; a new one restarts the clock.
   */
  watch(receiving: boolean, frames: number): void {
    if (this.timer && (!receiving || frames !== this.armedAt)) this.stopTimer();
    if (!receiving || this.timer || this.timeoutMs <= 0) return;
    this.armedAt = frames;
    this.timer = setTimeout(() => this.hooks.timedOut(this.timeoutMs), this.timeoutMs);
  }

  /** The connection closed: `held` bytes admitted for a payload never completed go back. */
  close(held: number): void {
    this.stopTimer();
    this.budget.cancel(this);
    if (held > 0) this.budget.release(held);
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
