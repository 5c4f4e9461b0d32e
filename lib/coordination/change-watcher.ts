// Change notification. A ChangeSource tells its listeners "look again": another process (or this
// one) committed something. ChangeFanout is the listener set; ChangeWatcher feeds one from PRAGMA
// data_version on a connection (it moves whenever another connection commits, and reading it costs
// no disk I/O). A controller's coordinator is fed by its coordination thread instead, which polls
// data_version off the I/O thread (db-thread.ts); another backend would feed it from its own
// notifications.
import type { Database } from 'better-sqlite3';
import { dataVersion } from './db.js';

export type ChangeListener = () => void;

export interface ChangeSource {
  /** Adds a listener; returns the function that removes it. */
  subscribe(fn: ChangeListener): () => void;
  /** Runs the listeners now, as if another process had committed (used after our own commits). */
  notify(): void;
  close(): void;
}

export class ChangeFanout implements ChangeSource {
  protected readonly listeners = new Set<ChangeListener>();

  subscribe(fn: ChangeListener): () => void {
    this.listeners.add(fn);
    this.listening(this.listeners.size);
    return () => {
      this.listeners.delete(fn);
      this.listening(this.listeners.size);
    };
  }

  notify(): void {
    for (const fn of [...this.listeners]) fn();
  }

  close(): void {
    this.listeners.clear();
    this.listening(0);
  }

  /** Told how many listeners there are after each change of the set. */
  protected listening(_count: number): void {}
}

/** data_version polling on a connection of this thread (for tools and tests; not the I/O path). */
export class ChangeWatcher extends ChangeFanout {
  private timer: NodeJS.Timeout | undefined;
  private last: number;

  constructor(private readonly db: Database, private readonly intervalMs = 50) {
    super();
    this.last = dataVersion(db);
  }

  /** Checks data_version once; true (and listeners run) when it moved. */
  poll(): boolean {
    const v = dataVersion(this.db);
    if (v === this.last) return false;
    this.last = v;
    this.notify();
    return true;
  }

  /** The timer runs while at least one listener is registered. */
  protected override listening(count: number): void {
    if (count > 0 && !this.timer) this.timer = setInterval(() => this.poll(), this.intervalMs);
    if (count === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
