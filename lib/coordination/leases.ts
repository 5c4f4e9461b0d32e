// Region leases in SQL: who holds a region of an array, who wants it, and its write-intent bit.
// This is the slow path; LeaseCache (lease-cache.ts) keeps held leases in memory so that
// steady-state I/O runs no SQL at all.
import type { Database, Statement } from 'better-sqlite3';
import { NbdraidError } from '../errors.js';
import { EventLog } from './events.js';

export interface LeaseRecord {
  arrayName: string; region: number; holder: number | null; epoch: number; wantedBy: number | null; dirty: boolean; updatedAt: number;
}
export type AcquireOutcome = { granted: true; epoch: number; dirty: boolean } | { granted: false; holder: number };
export interface ResyncRecord { arrayName: string; region: number; fromController: number | null; recordedAt: number }

interface LeaseRow { array_name: string; region: number; holder: number | null; epoch: number; wanted_by: number | null; dirty: number; updated_at: number }

export class LeaseStore {
  private readonly events: EventLog;
  private readonly s: Record<string, Statement>;

  /** Leases of one array, acted on by controller `controller` (null: read-only use by the CLI). */
  constructor(private readonly db: Database, private readonly controller: number | null, readonly arrayName: string) {
    this.events = new EventLog(db);
    this.s = {
      get: db.prepare('SELECT * FROM region_leases WHERE array_name = ? AND region = ?'),
      insert: db.prepare(`INSERT INTO region_leases (array_name, region, holder, epoch, dirty, updated_at) VALUES (?, ?, ?, 1, 0, ?)`),
      take: db.prepare(`UPDATE region_leases SET holder = ?, epoch = epoch + 1, wanted_by = NULL, updated_at = ? WHERE array_name = ? AND region = ?`),
      unwant: db.prepare('UPDATE region_leases SET wanted_by = NULL WHERE array_name = ? AND wanted_by = ?'),
      want: db.prepare('UPDATE region_leases SET wanted_by = ? WHERE array_name = ? AND region = ? AND wanted_by IS NULL'),
      wanted: db.prepare(`SELECT region, wanted_by, dirty FROM region_leases WHERE holder = ? AND wanted_by IS NOT NULL AND array_name = ?`),
      held: db.prepare('SELECT region FROM region_leases WHERE holder = ? AND array_name = ?'),
      free: db.prepare('UPDATE region_leases SET holder = NULL, updated_at = ? WHERE array_name = ? AND region = ? AND holder = ?'),
      drop: db.prepare('DELETE FROM region_leases WHERE array_name = ? AND region = ? AND holder = ? AND dirty = 0'),
      dirty: db.prepare('UPDATE region_leases SET dirty = ?, updated_at = ? WHERE array_name = ? AND region = ? AND holder = ?'),
      list: db.prepare('SELECT * FROM region_leases WHERE array_name = ? ORDER BY region'),
      resync: db.prepare(`SELECT array_name AS arrayName, region, from_controller AS fromController, recorded_at AS recordedAt
        FROM resync_regions WHERE array_name = ?
        UNION ALL SELECT array_name, region, NULL, updated_at FROM region_leases
          WHERE array_name = ? AND holder IS NULL AND dirty = 1 AND region NOT IN (SELECT region FROM resync_regions WHERE array_name = ?)
        ORDER BY region`),
      addResync: db.prepare(`INSERT OR IGNORE INTO resync_regions (array_name, region, from_controller, recorded_at) VALUES (?, ?, ?, ?)`),
      clearResync: db.prepare('DELETE FROM resync_regions WHERE array_name = ? AND region = ?'),
      clearUnheld: db.prepare('DELETE FROM region_leases WHERE array_name = ? AND region = ? AND holder IS NULL'),
    };
  }

  /**
   * Takes the lease when it is free (or already ours); otherwise marks it wanted by us (unless
   * someone already waits) and reports the holder. A dead holder is the caller's to reap first.
   */
  tryAcquire(region: number): AcquireOutcome {
    const me = this.me();
    const seen = this.s.get.get(this.arrayName, region) as LeaseRow | undefined;
    // Only the holder changes a row it holds, so these two reads need no transaction.
    if (seen?.holder === me) return { granted: true, epoch: seen.epoch, dirty: seen.dirty === 1 };
    if (seen && seen.holder !== null && seen.wanted_by === me) return { granted: false, holder: seen.holder };
    return this.db.transaction((): AcquireOutcome => {
      const row = this.s.get.get(this.arrayName, region) as LeaseRow | undefined;
      const now = Date.now();
      if (!row) {
        this.s.insert.run(this.arrayName, region, me, now);
        this.event('lease.granted', region, { epoch: 1 });
        return { granted: true, epoch: 1, dirty: false };
      }
      if (row.holder === me) return { granted: true, epoch: row.epoch, dirty: row.dirty === 1 };
      if (row.holder === null) {
        this.s.take.run(me, now, this.arrayName, region);
        this.event('lease.granted', region, { epoch: row.epoch + 1, dirty: row.dirty === 1 });
        return { granted: true, epoch: row.epoch + 1, dirty: row.dirty === 1 };
      }
      if (this.s.want.run(me, this.arrayName, region).changes === 1) this.event('lease.wanted', region, { holder: row.holder });
      return { granted: false, holder: row.holder };
    }).immediate();
  }

  /** Withdraws every request of ours for leases of this array. */
  unwantAll(): void {
    this.s.unwant.run(this.arrayName, this.me());
  }

  /** Our leases that another controller asked for. */
  wanted(): { region: number; wantedBy: number; dirty: boolean }[] {
    return (this.s.wanted.all(this.me(), this.arrayName) as { region: number; wanted_by: number; dirty: number }[])
      .map((r) => ({ region: r.region, wantedBy: r.wanted_by, dirty: r.dirty === 1 }));
  }

  /** Regions whose lease we hold according to the database. */
  held(): number[] {
    return (this.s.held.all(this.me(), this.arrayName) as { region: number }[]).map((r) => r.region);
  }

  /**
   * Gives a lease up: straight to the controller that wants it (dirty bit and all), else free.
   * A free clean lease leaves no row; a free dirty one stays, its bit inherited by the next holder.
   */
  yield(region: number): void {
    const me = this.me();
    this.db.transaction(() => {
      const row = this.s.get.get(this.arrayName, region) as LeaseRow | undefined;
      if (row?.holder !== me) return;
      const now = Date.now();
      if (row.wanted_by !== null) {
        this.s.take.run(row.wanted_by, now, this.arrayName, region);
        this.event('lease.handed-over', region, { to: row.wanted_by, epoch: row.epoch + 1, dirty: row.dirty === 1 });
      } else {
        if (this.s.drop.run(this.arrayName, region, me).changes === 0) this.s.free.run(now, this.arrayName, region, me);
        this.event('lease.freed', region, { dirty: row.dirty === 1 });
      }
    }).immediate();
  }

  /**
   * Sets the write-intent bit of held regions, durably: this commit is synced (synchronous=FULL)
   * before the caller's first write to those regions may start.
   */
  markDirty(regions: number[]): void {
    this.db.pragma('synchronous = FULL');
    try {
      this.setDirty(regions, 1, 'lease.dirty');
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  /** Clears the write-intent bit of held regions (their writes are flushed and they are idle). */
  markClean(regions: number[]): void {
    this.setDirty(regions, 0, 'lease.clean');
  }

  list(): LeaseRecord[] {
    return (this.s.list.all(this.arrayName) as LeaseRow[]).map((r) => ({
      arrayName: r.array_name, region: r.region, holder: r.holder, epoch: r.epoch, wantedBy: r.wanted_by,
      dirty: r.dirty === 1, updatedAt: r.updated_at,
    }));
  }

  /** Regions whose parity must be recomputed: dirty when their holder died, or dirty and left unheld. */
  pendingResync(): ResyncRecord[] {
    return this.s.resync.all(this.arrayName, this.arrayName, this.arrayName) as ResyncRecord[];
  }

  /**
   * Records `regions` as needing a resync (their parity may lag their data), e.g. every region of
   * an array assembled from members that were not shut down cleanly.
   */
  requireResync(regions: number[]): void {
    this.db.transaction(() => {
      const now = Date.now();
      for (const r of regions) this.s.addResync.run(this.arrayName, r, this.controller, now);
      this.events.append({ controller: this.controller, actor: this.controller === null ? 'cli' : undefined, kind: 'resync.required', arrayName: this.arrayName, detail: { regions: regions.length } });
    }).immediate();
  }

  /** After a resync of `regions`: forget them (the resync task's completion action calls this). */
  clearResync(regions: number[]): void {
    this.db.transaction(() => {
      for (const r of regions) {
        this.s.clearResync.run(this.arrayName, r);
        this.s.clearUnheld.run(this.arrayName, r);
      }
      this.events.append({ controller: this.controller, actor: this.controller === null ? 'cli' : undefined, kind: 'resync.cleared', arrayName: this.arrayName, detail: { regions } });
    }).immediate();
  }

  private setDirty(regions: number[], bit: 0 | 1, kind: string): void {
    const me = this.me();
    this.db.transaction(() => {
      const now = Date.now();
      for (const r of regions) this.s.dirty.run(bit, now, this.arrayName, r, me);
      this.events.append({ controller: me, kind, arrayName: this.arrayName, detail: { regions } });
    }).immediate();
  }

  private me(): number {
    if (this.controller === null) throw new NbdraidError('EPERM', `leases of ${this.arrayName}`, 'a read-only lease store cannot take or change leases');
    return this.controller;
  }

  private event(kind: string, region: number, detail: Record<string, unknown>): void {
    this.events.append({ controller: this.controller, kind, arrayName: this.arrayName, detail: { region, ...detail } });
  }
}
