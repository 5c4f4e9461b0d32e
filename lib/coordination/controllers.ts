// Controllers: registration under a flock held for the process's life, heartbeat for display,
// and reaping of dead controllers (their partitions, leases and initiated tasks).
import type { Database, Statement } from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NbdraidError } from '../errors.js';
import { EventLog } from './events.js';
import { dropLock, holdLock, lockIsHeld } from './liveness.js';

export type ControllerState = 'live' | 'stopped' | 'dead';

export interface ControllerRecord {
  id: number; pid: number; host: string; lockFile: string; address: string | null;
  state: ControllerState; startedAt: number; heartbeatAt: number; endedAt: number | null;
}

/** What reaping one controller (dead or stopped) released. */
export interface ReapResult {
  controller: number;
  partitions: { taskId: number; idx: number }[];
  leasesFreed: number;
  dirtyRegions: { arrayName: string; region: number }[];
  tasksAdopted: number[];
}

interface ControllerRow {
  id: number; pid: number; host: string; lock_file: string; address: string | null;
  state: ControllerState; started_at: number; heartbeat_at: number; ended_at: number | null;
}

export class ControllerRegistry {
  private readonly events: EventLog;
  private readonly s: Record<string, Statement>;
  private readonly locks = new Map<number, number>();

  constructor(private readonly db: Database, private readonly stateDir: string) {
    this.events = new EventLog(db);
    this.s = {
      insert: db.prepare(`INSERT INTO controllers (pid, host, lock_file, address, state, started_at, heartbeat_at)
        VALUES (?, ?, ?, ?, 'live', ?, ?)`),
      get: db.prepare('SELECT * FROM controllers WHERE id = ?'),
      list: db.prepare('SELECT * FROM controllers ORDER BY id'),
      live: db.prepare(`SELECT * FROM controllers WHERE state = 'live' ORDER BY id`),
      heartbeat: db.prepare(`UPDATE controllers SET heartbeat_at = ? WHERE id = ? AND state = 'live'`),
      address: db.prepare('UPDATE controllers SET address = ? WHERE id = ?'),
      end: db.prepare(`UPDATE controllers SET state = ?, ended_at = ? WHERE id = ? AND state = 'live'`),
      ownedParts: db.prepare(`SELECT task_id AS taskId, idx FROM partitions WHERE owner = ? AND state = 'IN_PROGRESS'`),
      releaseParts: db.prepare(`UPDATE partitions SET state = 'READY', owner = NULL, updated_at = ?
        WHERE owner = ? AND state = 'IN_PROGRESS'`),
      dirtyLeases: db.prepare(`SELECT array_name AS arrayName, region FROM region_leases WHERE holder = ? AND dirty = 1`),
      recordResync: db.prepare(`INSERT OR IGNORE INTO resync_regions (array_name, region, from_controller, recorded_at)
        VALUES (?, ?, ?, ?)`),
      dropLeases: db.prepare('DELETE FROM region_leases WHERE holder = ?'),
      unwant: db.prepare('UPDATE region_leases SET wanted_by = NULL WHERE wanted_by = ?'),
      initiated: db.prepare(`SELECT id, state FROM tasks WHERE initiator = ? AND state IN ('RUNNING', 'PAUSED', 'COMPLETING')`),
      // The heir must be live (a reap answered after its reaper stopped hands the tasks to NULL,
      // for the next live controller to adopt).
      adopt: db.prepare(`UPDATE tasks SET initiator = (SELECT id FROM controllers WHERE id = @heir AND state = 'live'),
        state = CASE state WHEN 'COMPLETING' THEN 'RUNNING' ELSE state END, updated_at = @now WHERE id = @id`),
    };
  }

  /**
   * Registers the calling process as a controller. The lock is taken before the row exists, so
   * any row another process can see already belongs to a locked, hence provably live, controller.
   */
  register(opts: { address?: string } = {}): ControllerRecord {
    const dir = join(this.stateDir, 'controllers');
    mkdirSync(dir, { recursive: true });
    const lockFile = join(dir, `${process.pid}-${randomBytes(6).toString('hex')}.lock`);
    const fd = holdLock(lockFile);
    const now = Date.now();
    const id = this.db.transaction(() => {
      const rowid = Number(this.s.insert.run(process.pid, hostname(), lockFile, opts.address ?? null, now, now).lastInsertRowid);
      this.events.append({ controller: rowid, kind: 'controller.registered', detail: { pid: process.pid, address: opts.address ?? null } });
      return rowid;
    }).immediate();
    this.locks.set(id, fd);
    return this.require(id);
  }

  heartbeat(id: number): void {
    this.s.heartbeat.run(Date.now(), id);
  }

  setAddress(id: number, address: string | null): void {
    this.s.address.run(address, id);
  }

  get(id: number): ControllerRecord | undefined {
    const row = this.s.get.get(id) as ControllerRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  require(id: number): ControllerRecord {
    const rec = this.get(id);
    if (!rec) throw new NbdraidError('ENOENT', `controller ${id}`, `no such controller; list them with 'nbdraid controllers'`);
    return rec;
  }

  list(): ControllerRecord[] {
    return (this.s.list.all() as ControllerRow[]).map(toRecord);
  }

  /** Live exactly when its row says live and its lock is held by someone. */
  isAlive(id: number): boolean {
    if (this.locks.has(id)) return true;
    const rec = this.get(id);
    return rec !== undefined && rec.state === 'live' && lockIsHeld(rec.lockFile);
  }

  /**
   * Reaps every controller whose row says live but whose lock can be taken. `reaper` (a live
   * controller, or null for the CLI) adopts the tasks they initiated.
   */
  reapDead(reaper: number | null): ReapResult[] {
    const out: ReapResult[] = [];
    for (const row of this.s.live.all() as ControllerRow[]) {
      if (this.locks.has(row.id) || lockIsHeld(row.lock_file)) continue;
      const r = this.end(row.id, 'dead', reaper);
      if (r) out.push(r);
    }
    return out;
  }

  /** Ends one of our own controllers cleanly: its work goes back to the pool, then the lock is dropped. */
  stop(id: number): ReapResult | undefined {
    const fd = this.locks.get(id);
    if (fd === undefined) throw new NbdraidError('EPERM', `controller ${id}`, 'only the process that registered a controller can stop it');
    const r = this.end(id, 'stopped', null);
    this.locks.delete(id);
    dropLock(fd, this.require(id).lockFile);
    return r;
  }

  /**
   * One transaction: partitions IN_PROGRESS under `id` return to READY with their checkpoints;
   * its leases are freed, dirty ones recorded for resync; tasks it initiated pass to `heir`
   * (NULL: the next live controller adopts them), an interrupted completion back to RUNNING.
   */
  private end(id: number, state: 'dead' | 'stopped', heir: number | null): ReapResult | undefined {
    return this.db.transaction(() => {
      const now = Date.now();
      if (this.s.end.run(state, now, id).changes === 0) return undefined;
      const partitions = this.s.ownedParts.all(id) as { taskId: number; idx: number }[];
      this.s.releaseParts.run(now, id);
      const dirtyRegions = this.s.dirtyLeases.all(id) as { arrayName: string; region: number }[];
      for (const d of dirtyRegions) this.s.recordResync.run(d.arrayName, d.region, id, now);
      const leasesFreed = this.s.dropLeases.run(id).changes;
      this.s.unwant.run(id);
      const tasks = this.s.initiated.all(id) as { id: number; state: string }[];
      for (const t of tasks) this.s.adopt.run({ heir, now, id: t.id });
      const actor = heir === null ? { actor: state === 'dead' ? 'reaper' : `controller ${id}` } : { controller: heir };
      this.events.append({ ...actor, kind: `controller.${state}`, detail: { controller: id, partitions: partitions.length, leasesFreed, dirtyRegions } });
      for (const p of partitions) this.events.append({ ...actor, kind: 'partition.released', taskId: p.taskId, partitionIdx: p.idx, detail: { from: id, why: state } });
      for (const t of tasks) {
        this.events.append({ ...actor, kind: t.state === 'COMPLETING' ? 'task.completion-interrupted' : 'task.adopted', taskId: t.id, detail: { from: id, to: heir } });
      }
      return { controller: id, partitions, leasesFreed, dirtyRegions, tasksAdopted: tasks.map((t) => t.id) };
    }).immediate();
  }
}

function toRecord(r: ControllerRow): ControllerRecord {
  return {
    id: r.id, pid: r.pid, host: r.host, lockFile: r.lock_file, address: r.address, state: r.state,
    startedAt: r.started_at, heartbeatAt: r.heartbeat_at, endedAt: r.ended_at,
  };
}
