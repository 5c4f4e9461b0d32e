// One controller's channel on PostgreSQL: its operations (pgOps) timed for the metrics, change
// notices from LISTEN (reopened while the server is away, with a notice at every try so that
// nothing waits on a change it missed), and the superblock writers' advisory lock.
import type pg from 'pg';
import { NbdraidError } from '../../errors.js';
import type { CoordinationChannel } from '../channel.js';
import { ChangeFanout } from '../change-watcher.js';
import type { AsyncDbOps, DbOpObserver } from '../db-thread.js';
import type { DbOpName } from '../db-thread-ops.js';
import { PgChangeListener } from './listener.js';
import { pgOps } from './ops.js';
import { superblockLock } from './superblock-lock.js';
import { asUnavailable } from './unavailable.js';

/** How often a lost LISTEN connection is tried again; each try also tells the subscribers (ms). */
const RELISTEN_MS = 250;

export class PgChannel implements CoordinationChannel {
  readonly ops: AsyncDbOps;
  readonly changes = new ChangeFanout();
  private observer: DbOpObserver | undefined;
  private listener: PgChangeListener | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  private constructor(private readonly pool: pg.Pool, private readonly uri: string, id: number, private readonly deadAfterMs: number) {
    const raw = pgOps(pool, id, deadAfterMs) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const timed: Record<string, (...a: unknown[]) => Promise<unknown>> = {};
    for (const [name, fn] of Object.entries(raw)) timed[name] = (...args) => this.call(name as DbOpName, () => fn(...args));
    this.ops = timed as unknown as AsyncDbOps;
    this.lockSuperblocks = superblockLock(pool, uri);
  }

  /** Controller `id`'s channel over `pool`; LISTENs on its own connection to `uri`. */
  static async open(pool: pg.Pool, uri: string, id: number, deadAfterMs: number): Promise<PgChannel> {
    const ch = new PgChannel(pool, uri, id, deadAfterMs);
    await ch.listen();
    return ch;
  }

  observe(observer: DbOpObserver): void {
    this.observer = observer;
  }

  readonly lockSuperblocks: (arrayName: string) => Promise<() => Promise<void>>;

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.changes.close();
    await Promise.allSettled([...this.inFlight]);
    await this.listener?.close();
  }

  private async call(op: DbOpName, run: () => Promise<unknown>): Promise<unknown> {
    // As on SQLite: a call after close is refused by name, never sent to a pool that has ended.
    if (this.closed) throw new NbdraidError('ESHUTDOWN', 'coordination', `'${op}' after the coordination connection was closed`);
    const asked = performance.now();
    let ok = false;
    const p = run();
    this.inFlight.add(p);
    try {
      const v = await p;
      ok = true;
      return v;
    } catch (err) {
      throw asUnavailable(err, this.uri);
    } finally {
      this.inFlight.delete(p);
      this.observer?.(op, (performance.now() - asked) / 1000, ok);
    }
  }

  /** Opens LISTEN; a failure, or a loss later, is tried again every RELISTEN_MS until closed. */
  private async listen(): Promise<void> {
    if (this.closed) return;
    try {
      const l = await PgChangeListener.open(this.uri, Math.ceil(this.deadAfterMs / 2));
      if (this.closed) return void (await l.close());
      this.listener = l;
      l.subscribe(() => {
        if (l.state === 'lost' && this.listener === l) this.again();
        this.changes.notify();
      });
      this.changes.notify(); // whatever happened while no one listened
    } catch {
      this.again();
    }
  }

  private again(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.changes.notify();
      const old = this.listener;
      this.listener = undefined;
      void old?.close();
      void this.listen();
    }, RELISTEN_MS);
  }
}
