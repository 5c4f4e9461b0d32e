// Cheap change detection across processes: PRAGMA data_version changes whenever another connection
// commits, and reading it costs no disk I/O. One timer per watcher; listeners run on a change.
import type { Database } from 'better-sqlite3';
import { dataVersion } from './db.js';

export type ChangeListener = () => void;

export class ChangeWatcher {
  private readonly listeners = new Set<ChangeListener>();
  private timer: NodeJS.Timeout | undefined;
  private last: number;

  constructor(private readonly db: Database, private readonly intervalMs = 50) {
    this.last = dataVersion(db);
  }

  /** Adds a listener; the timer runs while at least one listener is registered. */
  subscribe(fn: ChangeListener): () => void {
    this.listeners.add(fn);
    if (!this.timer) {
      this.timer = setInterval(() => this.poll(), this.intervalMs);
    }
    return () => this.unsubscribe(fn);
  }

  /** Runs the listeners now, as if another process had committed (used after our own commits). */
  notify(): void {
    for (const fn of [...this.listeners]) fn();
  }

  /** Checks data_version once; true (and listeners run) when it moved. */
  poll(): boolean {
    const v = dataVersion(this.db);
    if (v === this.last) return false;
    this.last = v;
    this.notify();
    return true;
  }

  close(): void {
    this.listeners.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private unsubscribe(fn: ChangeListener): void {
    this.listeners.delete(fn);
    if (this.listeners.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
