// The registry of arrays: what the CLI and the controllers know about each array by name.
// The members' superblocks remain the truth for assembly; this is runtime coordination.
import type { Database, Statement } from 'better-sqlite3';
import { NbdraidError } from '../errors.js';
import { ChangeWatcher } from './change-watcher.js';
import { dataVersion } from './db.js';
import { EventLog } from './events.js';
import { type AssignedSpare, type RecordedChange, applyMemberChange, assignSpare } from './member-change.js';

export type MemberState = 'active' | 'faulty' | 'removed' | 'spare' | 'rebuilding';
export interface MemberRecord {
  slot: number | null; path: string; state: MemberState; deviceUuid: string;
  /** Index into the superblocks' dev_roles, once the member has a superblock of this array (not for a spare). */
  devNumber?: number;
  /** While rebuilding: sectors from the data offset already recovered (md's recovery_offset). */
  recoveryOffset?: number;
}
/** What the superblocks say besides membership, kept in the record so that any process writes the same. */
export interface MdIdentity {
  /** md's set_name (at most 32 bytes) and creation time in seconds. */
  setName?: string;
  ctime?: number;
  /** md's internal bitmap, kept (not maintained): its offset from the superblock in sectors. */
  bitmapOffset?: number;
  /** Devices the superblocks list in a slot that were not given to assemble: out of the array from now on. */
  absent?: { devNumber: number; slot: number; deviceUuid: string }[];
}
/** What the members' superblocks were last written with. */
export interface WrittenSuperblocks { events: number; state: unknown; writtenAt: number }
export interface Throttle { minMBps: number; maxMBps: number; inflight: number }
export interface ArrayRecord {
  name: string; uuid: string; level: number; layout: string; chunk: number; raidDisks: number;
  dataOffset: number; memberSize: number; members: MemberRecord[]; throttle: Throttle; md: MdIdentity;
  revision: number; createdAt: number; updatedAt: number;
}
export type NewArray = Omit<ArrayRecord, 'revision' | 'createdAt' | 'updatedAt' | 'throttle' | 'md'> & { throttle?: Throttle; md?: MdIdentity };

/** Who changes the registry, for the events journal. */
export interface Actor { controller?: number | null; actor?: string }

export const DEFAULT_THROTTLE: Throttle = { minMBps: 50, maxMBps: 2000, inflight: 8 };

export interface ArrayRow {
  name: string; uuid: string; level: number; layout: string; chunk: number; raid_disks: number;
  data_offset: number; member_size: number; members: string; throttle: string; md: string;
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
  private readonly selWritten: Statement;
  private readonly putWritten: Statement;
  private readonly intent: Statement;
  private readonly delWritten: Statement;

  constructor(private readonly db: Database, private readonly who: Actor = { actor: 'cli' }) {
    this.events = new EventLog(db);
    this.sel = db.prepare('SELECT * FROM arrays WHERE name = ?');
    this.selAll = db.prepare('SELECT * FROM arrays ORDER BY name');
    this.ins = db.prepare(`INSERT INTO arrays (name, uuid, level, layout, chunk, raid_disks, data_offset, member_size,
      members, throttle, md, revision, created_at, updated_at)
      VALUES (@name, @uuid, @level, @layout, @chunk, @raidDisks, @dataOffset, @memberSize, @members, @throttle, @md, 1, @now, @now)`);
    this.upd = db.prepare(`UPDATE arrays SET uuid = @uuid, level = @level, layout = @layout, chunk = @chunk,
      raid_disks = @raidDisks, data_offset = @dataOffset, member_size = @memberSize, members = @members,
      throttle = @throttle, md = @md, revision = revision + 1, updated_at = @now WHERE name = @name`);
    this.del = db.prepare('DELETE FROM arrays WHERE name = ?');
    this.rev = db.prepare('SELECT revision FROM arrays WHERE name = ?');
    this.selWritten = db.prepare('SELECT events, state, written_at FROM superblocks WHERE array_name = ?');
    this.putWritten = db.prepare(`INSERT INTO superblocks (array_name, events, state, written_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (array_name) DO UPDATE SET events = excluded.events, state = excluded.state, written_at = excluded.written_at`);
    this.delWritten = db.prepare('DELETE FROM superblocks WHERE array_name = ?');
    this.intent = db.prepare(`SELECT (SELECT COUNT(*) FROM region_leases WHERE array_name = @name AND dirty = 1)
      + (SELECT COUNT(*) FROM resync_regions WHERE array_name = @name) AS n`);
  }

  create(rec: NewArray): ArrayRecord {
    return this.db.transaction(() => {
      if (this.sel.get(rec.name)) {
        throw new NbdraidError('EEXIST', `array ${rec.name}`, `an array of that name exists; pick another name or remove it first (nbdraid list)`);
      }
      this.ins.run(toParams({ ...rec, throttle: rec.throttle ?? DEFAULT_THROTTLE, md: rec.md ?? {} }));
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

  /**
   * Records a member change (member-change.ts) in one transaction. A change the record already
   * shows (another controller applied it first) costs no update: no revision bump that would send
   * every controller to re-read. A change the record no longer allows throws ESTALE.
   */
  changeMember(name: string, change: RecordedChange): void {
    this.db.transaction(() => {
      const now = this.require(name);
      const before = JSON.stringify(now.members);
      applyMemberChange(now, change);
      if (JSON.stringify(now.members) !== before) this.update(name, (r) => applyMemberChange(r, change));
    }).immediate();
  }

  /** Assigns a spare to rebuild `slot` onto, in one transaction: of several controllers asking, one wins. */
  assignSpare(name: string, slot: number): AssignedSpare | undefined {
    return this.db.transaction(() => {
      let chosen: AssignedSpare | undefined;
      const probe = this.require(name);
      if (!assignSpare(probe, slot)) return undefined;
      this.update(name, (r) => { chosen = assignSpare(r, slot); });
      return chosen;
    }).immediate();
  }

  /**
   * The record, what its superblocks were last written with, and how many regions may hold
   * parity that lags its data (write-intent bits set, resyncs pending), read in one transaction.
   */
  superblockSnapshot(name: string): { rec: ArrayRecord; written: WrittenSuperblocks | undefined; unsynced: number } {
    return this.db.transaction(() => ({ rec: this.require(name), written: this.written(name), unsynced: (this.intent.get({ name }) as { n: number }).n }))();
  }

  written(name: string): WrittenSuperblocks | undefined {
    const row = this.selWritten.get(name) as { events: number; state: string; written_at: number } | undefined;
    return row ? { events: row.events, state: JSON.parse(row.state) as unknown, writtenAt: row.written_at } : undefined;
  }

  /** Records what the members' superblocks now hold (called with the superblock lock held). */
  recordWritten(name: string, events: number, state: unknown): void {
    this.putWritten.run(name, events, JSON.stringify(state), Date.now());
  }

  remove(name: string): void {
    this.db.transaction(() => {
      if (this.del.run(name).changes === 0) this.require(name);
      this.delWritten.run(name);
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

export function toParams(r: Omit<ArrayRecord, 'revision' | 'createdAt' | 'updatedAt'>): Record<string, unknown> {
  return {
    name: r.name, uuid: r.uuid, level: r.level, layout: r.layout, chunk: r.chunk, raidDisks: r.raidDisks,
    dataOffset: r.dataOffset, memberSize: r.memberSize, members: JSON.stringify(r.members),
    throttle: JSON.stringify(r.throttle), md: JSON.stringify(r.md ?? {}), now: Date.now(),
  };
}

export function toRecord(r: ArrayRow): ArrayRecord {
  return {
    name: r.name, uuid: r.uuid, level: r.level, layout: r.layout, chunk: r.chunk, raidDisks: r.raid_disks,
    dataOffset: r.data_offset, memberSize: r.member_size, members: JSON.parse(r.members) as MemberRecord[],
    throttle: JSON.parse(r.throttle) as Throttle, md: JSON.parse(r.md ?? '{}') as MdIdentity, revision: r.revision, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

/** The top-level fields that changed, with their new values (for the events journal). */
export function diff(before: ArrayRecord, after: ArrayRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(after) as (keyof ArrayRecord)[]) {
    if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) out[k] = after[k];
  }
  return out;
}
