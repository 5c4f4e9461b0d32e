// What a serving controller talks to: the coordination object's operations as promises, its
// change notices, and (across hosts) the lock that orders superblock writers. The SQLite
// coordination thread (db-thread.ts) is one; the PostgreSQL pool (pg/channel.ts) is the other.
import type { ChangeSource } from './change-watcher.js';
import type { AsyncDbOps, DbOpObserver } from './db-thread.js';

export interface CoordinationChannel {
  readonly ops: AsyncDbOps;
  /** Commits by anyone: a notice may come for nothing, never miss a change for long. */
  readonly changes: ChangeSource;
  /** From now on `observer` hears of every operation (the metrics time commits with it). */
  observe(observer: DbOpObserver): void;
  /**
   * The superblock writers' lock across hosts, when the backend has one; absent, a flock in the
   * state directory orders the writers of one host.
   */
  readonly lockSuperblocks?: (arrayName: string) => Promise<() => Promise<void>>;
  /** Answers every call already made, then closes. */
  close(): Promise<void>;
}
