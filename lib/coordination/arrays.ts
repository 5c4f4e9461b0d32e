// The registry of arrays: what the CLI and the controllers know about each array by name.
// The members' superblocks remain the truth for assembly; this is runtime coordination.
import type { Database, Statement } from 'better-sqlite3';
import { NbdraidError } from '../errors.js';
import { ChangeWatcher } from './change-watcher.js';
import { dataVersion } from './db.js';
import { EventLog } from './events.js';

export type MemberState = 'active' | 'faulty' | 'removed' | 'spare' | 'rebuilding';
export interface MemberRecord { slot: number | null; path: string; state: MemberState; deviceUuid: string }
export interface Throttle { minMBps: number; maxMBps: number; inflight: number }
export interface ArrayRecord {
  name: string; uuid: string; level: number; layout: string; chunk: number; raidDisks: number;
  dataOffset: number; memberSize: number; members: MemberRecord[]; throttle: Throttle;
  revision: number; createdAt: number; updatedAt: number;
}
export type NewArray = Omit<ArrayRecord, 'revision' | 'createdAt' | 'updatedAt' | 'throttle'> & { throttle?: Throttle };

/** Who changes the registry, for the events journal. */
export interface Actor { controller?: number | null; actor?: string }

export const DEFAULT_THROTTLE: Throttle = { minMBps: 50, maxMBps: 2000, inflight: 8 };

interface ArrayRow {
  name: string; uuid: string; level: number; layout: string; chunk: number; raid_disks: number;
  data_offset: number; member_size: number; members: string; throttle: string;
  revision: number; created_at: number; updated_at: number;
}

export class ArrayRegistry {
  private readonly events: EventLog;
  private readonly sel: Statement;
  private readonly selAll: Statement;
  private readonly ins: Statement;
  private readonly upd: Statement;
  private readonly del: Statement;
  private readonly rev: Statement;

  constructor(private readonly db: Database, private readonly who: Actor = { actor: 'cli' }) {
    this.events = new EventLog(db);
    this.sel = db.prepare('SELECT * FROM arrays WHERE name = ?');
    this.selAll = db.prepare('SELECT * FROM arrays ORDER BY name');
    this.ins = db.prepare(`INSERT INTO arrays (name, uuid, level, layout, chunk, raid_disks, data_offset, member_size,
      members, throttle, revision, created_at, updated_at)
      VALUES (@name, @uuid, @level, @layout, @chunk, @raidDisks, @dataOffset, @memberSize, @members, @throttle, 1, @now, @now)`);
    this.upd = db.prepare(`UPDATE arrays SET uuid = @uuid, level = @level, layout = @layout, chunk = @chunk,
      raid_disks = @raidDisks, data_offset = @dataOffset, member_size = @memberSize, members = @members,
      throttle = @throttle, revision = revision + 1, updated_at = @now WHERE name = @name`);
    this.del = db.prepare('DELETE FROM arrays WHERE name = ?');
    this.rev = db.prepare('SELECT revision FROM arrays WHERE name = ?');
  }

  create(rec: NewArray): ArrayRecord {
    return this.db.transaction(() => {
      if (this.sel.get(rec.name)) {
        throw new NbdraidError('EEXIST', `array ${rec.name}`, `an array of that name exists; pick another name or remove it first (nbdraid list)`);
      }
      this.ins.run(toParams({ ...rec, throttle: rec.throttle ?? DEFAULT_THROTTLE }));
      this.events.append({ ...this.who, kind: 'array.created', arrayName: rec.name, detail: { uuid: rec.uuid, level: rec.level, raidDisks: rec.raidDisks } });
      return this.require(rec.name);
    }).immediate();
  }

  get(name: string): ArrayRecord | undefined {
    const row = this.sel.get(name) as ArrayRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  require(name: string): ArrayRecord {
    const rec = this.get(name);
    if (!rec) {
      throw new NbdraidError('ENOENT', `array ${name}`, `no such array; list arrays with 'nbdraid list', create one with 'nbdraid create ${name} ...'`);
    }
    return rec;
  }

  list(): ArrayRecord[] {
    return (this.selAll.all() as ArrayRow[]).map(toRecord);
  }

  /**
   * Reads, mutates and writes back the record in one IMMEDIATE transaction, so concurrent updaters
   * from other processes serialise; the revision is bumped. `mutate` must not change the name.
   */
  update(name: string, mutate: (rec: ArrayRecord) => void): ArrayRecord {
    return this.db.transaction(() => {
      const rec = this.require(name);
      const before = JSON.stringify(rec);
      mutate(rec);
      if (rec.name !== name) throw new NbdraidError('EINVAL', `array ${name}`, 'the name of an array cannot change in update');
      this.upd.run(toParams(rec));
      this.events.append({ ...this.who, kind: 'array.updated', arrayName: name, detail: diff(JSON.parse(before) as ArrayRecord, rec) });
      return this.require(name);
    }).immediate();
  }

  remove(name: string): void {
    this.db.transaction(() => {
      if (this.del.run(name).changes === 0) this.require(name);
      this.events.append({ ...this.who, kind: 'array.removed', arrayName: name });
    }).immediate();
  }

  /** The record's revision (bumped by every update), or undefined when there is no such array. */
  revision(name: string): number | undefined {
    return (this.rev.get(name) as { revision: number } | undefined)?.revision;
  }

  /** Changes whenever another connection committed anything: a cheap "look again" signal. */
  dataVersion(): number {
    return dataVersion(this.db);
  }

  /**
   * Calls `onChange(rec)` (rec undefined when removed) whenever the array's revision moves,
   * checking data_version every `intervalMs`. Returns a function that stops watching.
   */
  watch(name: string, onChange: (rec: ArrayRecord | undefined) => void, intervalMs = 100): () => void {
    const watcher = new ChangeWatcher(this.db, intervalMs);
    let last = this.revision(name);
    watcher.subscribe(() => {
      const now = this.revision(name);
      if (now === last) return;
      last = now;
      onChange(this.get(name));
    });
    return () => watcher.close();
  }
}

function toParams(r: Omit<ArrayRecord, 'revision' | 'createdAt' | 'updatedAt'>): Record<string, unknown> {
  return {
    name: r.name, uuid: r.uuid, level: r.level, layout: r.layout, chunk: r.chunk, raidDisks: r.raidDisks,
    dataOffset: r.dataOffset, memberSize: r.memberSize, members: JSON.stringify(r.members),
    throttle: JSON.stringify(r.throttle), now: Date.now(),
  };
}

function toRecord(r: ArrayRow): ArrayRecord {
  return {
    name: r.name, uuid: r.uuid, level: r.level, layout: r.layout, chunk: r.chunk, raidDisks: r.raid_disks,
    dataOffset: r.data_offset, memberSize: r.member_size, members: JSON.parse(r.members) as MemberRecord[],
    throttle: JSON.parse(r.throttle) as Throttle, revision: r.revision, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

/** The top-level fields that changed, with their new values (for the events journal). */
function diff(before: ArrayRecord, after: ArrayRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(after) as (keyof ArrayRecord)[]) {
    if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) out[k] = after[k];
  }
  return out;
}
