// The array's record on PostgreSQL, the semantics of ../arrays.ts: a change reads the row FOR
// UPDATE, applies the pure member-change functions to it and writes it back with the revision
// bumped, all in the caller's transaction, so concurrent changers from any host serialise.
import { NbdraidError } from '../../errors.js';
import {
  type Actor, type ArrayRecord, type ArrayRow, type NewArray, type WrittenSuperblocks, DEFAULT_THROTTLE, diff, toParams, toRecord,
} from '../arrays.js';
import { type AssignedSpare, type RecordedChange, applyMemberChange, assignSpare as pickSpare } from '../member-change.js';
import { appendEvent } from './events.js';
import type { Tx } from './tx.js';

/** The record's columns besides name, revision and times, in toParams' names. */
const COLUMNS = [
  ['uuid', 'uuid'], ['level', 'level'], ['layout', 'layout'], ['chunk', 'chunk'], ['raid_disks', 'raidDisks'],
  ['data_offset', 'dataOffset'], ['member_size', 'memberSize'], ['members', 'members'], ['throttle', 'throttle'], ['md', 'md'],
] as const;

const values = (r: Omit<ArrayRecord, 'revision' | 'createdAt' | 'updatedAt'>): unknown[] => {
  const p = toParams(r);
  return [r.name, ...COLUMNS.map(([, k]) => p[k])];
};

const missing = (name: string) =>
  new NbdraidError('ENOENT', `array ${name}`, `no such array; list arrays with 'nbdraid list', create one with 'nbdraid create ${name} ...'`);

export async function createArray(c: Tx, rec: NewArray, who: Actor): Promise<ArrayRecord> {
  const cols = COLUMNS.map(([col]) => col).join(', ');
  const params = COLUMNS.map((_, i) => `$${i + 2}`).join(', ');
  const { rows } = await c.query<ArrayRow>(`INSERT INTO arrays (name, ${cols}, revision, created_at, updated_at)
    VALUES ($1, ${params}, 1, nbdraid_now_ms(), nbdraid_now_ms()) ON CONFLICT (name) DO NOTHING RETURNING *`,
  values({ ...rec, throttle: rec.throttle ?? DEFAULT_THROTTLE, md: rec.md ?? {} }));
  if (rows.length === 0) {
    throw new NbdraidError('EEXIST', `array ${rec.name}`, 'an array of that name exists; pick another name or remove it first (nbdraid list)');
  }
  await appendEvent(c, { ...who, kind: 'array.created', arrayName: rec.name, detail: { uuid: rec.uuid, level: rec.level, raidDisks: rec.raidDisks } });
  return toRecord(rows[0]);
}

export async function getArray(c: Tx, name: string, lock = false): Promise<ArrayRecord | undefined> {
  const { rows } = await c.query<ArrayRow>(`SELECT * FROM arrays WHERE name = $1${lock ? ' FOR UPDATE' : ''}`, [name]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function requireArray(c: Tx, name: string, lock = false): Promise<ArrayRecord> {
  const rec = await getArray(c, name, lock);
  if (!rec) throw missing(name);
  return rec;
}

/**
 * Locks the row, lets `mutate` change a copy of the record, and writes it back (revision + 1,
 * an array.updated event) only when `mutate` reports a change: a change the record already
 * shows costs no revision bump that would send every controller to re-read.
 */
async function update<T>(c: Tx, name: string, who: Actor, mutate: (rec: ArrayRecord) => { changed: boolean; out: T }): Promise<T> {
  const before = await requireArray(c, name, true);
  const rec = structuredClone(before);
  const { changed, out } = mutate(rec);
  if (!changed) return out;
  const sets = COLUMNS.map(([col], i) => `${col} = $${i + 2}`).join(', ');
  await c.query(`UPDATE arrays SET ${sets}, revision = revision + 1, updated_at = nbdraid_now_ms() WHERE name = $1`, values(rec));
  await appendEvent(c, { ...who, kind: 'array.updated', arrayName: name, detail: diff(before, rec) });
  return out;
}

/** Records a member change (idempotent; ESTALE where the record moved on). True when the record changed. */
export function changeMember(c: Tx, name: string, change: RecordedChange, who: Actor): Promise<boolean> {
  return update(c, name, who, (rec) => {
    const before = JSON.stringify(rec.members);
    applyMemberChange(rec, change);
    const changed = JSON.stringify(rec.members) !== before;
    return { changed, out: changed };
  });
}

/** Assigns a spare to rebuild `slot` onto: of several controllers asking at once, the row lock lets one win. */
export function assignSpare(c: Tx, name: string, slot: number, who: Actor): Promise<AssignedSpare | undefined> {
  return update(c, name, who, (rec) => {
    const out = pickSpare(rec, slot);
    return { changed: out !== undefined, out };
  });
}

export async function written(c: Tx, name: string): Promise<WrittenSuperblocks | undefined> {
  const { rows } = await c.query<{ events: number; state: string; written_at: number }>(
    'SELECT events, state, written_at FROM superblocks WHERE array_name = $1', [name]);
  return rows[0] ? { events: rows[0].events, state: JSON.parse(rows[0].state) as unknown, writtenAt: rows[0].written_at } : undefined;
}

/** Records what the members' superblocks now hold (called with the superblock lock held). */
export async function recordWritten(c: Tx, name: string, events: number, state: unknown): Promise<void> {
  await c.query(`INSERT INTO superblocks (array_name, events, state, written_at) VALUES ($1, $2, $3, nbdraid_now_ms())
    ON CONFLICT (array_name) DO UPDATE SET events = excluded.events, state = excluded.state, written_at = excluded.written_at`,
  [name, events, JSON.stringify(state)]);
}

/** Regions whose parity may lag their data: write-intent bits set plus resyncs pending. */
export async function unsynced(c: Tx, name: string): Promise<number> {
  const { rows } = await c.query<{ n: number }>(`SELECT (SELECT count(*) FROM region_leases WHERE array_name = $1 AND dirty)
    + (SELECT count(*) FROM resync_regions WHERE array_name = $1) AS n`, [name]);
  return rows[0].n;
}

export async function listArrays(c: Tx): Promise<ArrayRecord[]> {
  const { rows } = await c.query<ArrayRow>('SELECT * FROM arrays ORDER BY name');
  return rows.map(toRecord);
}

/**
 * ArrayRegistry.update: reads the record FOR UPDATE, lets `mutate` change it and writes it back
 * with the revision bumped and an array.updated event, whatever `mutate` did.
 */
export async function updateArray(c: Tx, name: string, who: Actor, mutate: (rec: ArrayRecord) => void): Promise<ArrayRecord> {
  const before = await requireArray(c, name, true);
  const rec = structuredClone(before);
  mutate(rec);
  if (rec.name !== name) throw new NbdraidError('EINVAL', `array ${name}`, 'the name of an array cannot change in update');
  const sets = COLUMNS.map(([col], i) => `${col} = $${i + 2}`).join(', ');
  const { rows } = await c.query<ArrayRow>(`UPDATE arrays SET ${sets}, revision = revision + 1, updated_at = nbdraid_now_ms()
    WHERE name = $1 RETURNING *`, values(rec));
  await appendEvent(c, { ...who, kind: 'array.updated', arrayName: name, detail: diff(before, rec) });
  return toRecord(rows[0]);
}

/** ArrayRegistry.remove: the record, what its superblocks were written with, an array.removed event. */
export async function removeArray(c: Tx, name: string, who: Actor): Promise<void> {
  const r = await c.query('DELETE FROM arrays WHERE name = $1', [name]);
  if (r.rowCount === 0) throw missing(name);
  await c.query('DELETE FROM superblocks WHERE array_name = $1', [name]);
  await appendEvent(c, { ...who, kind: 'array.removed', arrayName: name });
}

export async function arrayRevision(c: Tx, name: string): Promise<number | undefined> {
  const { rows } = await c.query<{ revision: number }>('SELECT revision FROM arrays WHERE name = $1', [name]);
  return rows[0]?.revision;
}
