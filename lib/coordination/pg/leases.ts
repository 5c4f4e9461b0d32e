// Region leases on PostgreSQL, the semantics of ../leases.ts: each step locks the lease row it
// changes (SELECT ... FOR UPDATE), and every grant stamps the row with nextval('lease_epoch'), an
// epoch that only grows, across regions, arrays and hosts.
import { NbdraidError } from '../../errors.js';
import type { AcquireOutcome } from '../leases.js';
import type { OwnedLease } from '../lease-ops.js';
import { appendEvent } from './events.js';
import type { Tx } from './tx.js';

interface LeaseRow { holder: number | null; epoch: number; wanted_by: number | null; dirty: boolean }

const lockRow = async (c: Tx, array: string, region: number): Promise<LeaseRow | undefined> =>
  (await c.query<LeaseRow>('SELECT holder, epoch, wanted_by, dirty FROM region_leases WHERE array_name = $1 AND region = $2 FOR UPDATE', [array, region])).rows[0];

/**
 * Takes the lease when free (or already ours); otherwise marks it wanted by us and names the
 * holder. `changed.v` is set when the row moved (a grant, a new want): only then need others hear.
 */
export async function tryAcquire(c: Tx, me: number, array: string, region: number, again = 1, changed: { v: boolean } = { v: false }): Promise<AcquireOutcome> {
  // Only a live controller may hold or want a lease; the row lock keeps a reap out until this
  // commits, and a reap after it frees what this took. Without it, a take answered after its
  // controller was reaped would leave a lease held, or wanted, by the dead for good.
  const alive = await c.query(`SELECT 1 FROM controllers WHERE id = $1 AND state = 'live' FOR SHARE`, [me]);
  if (alive.rows.length === 0) throw new NbdraidError('ESTALE', `controller ${me}`, 'is no longer live (reaped after a missed heartbeat); it may not take leases');
  const ins = await c.query<{ epoch: number }>(`INSERT INTO region_leases (array_name, region, holder, epoch, updated_at)
    VALUES ($1, $2, $3, nextval('lease_epoch'), nbdraid_now_ms()) ON CONFLICT DO NOTHING RETURNING epoch`, [array, region, me]);
  if (ins.rows.length === 1) {
    changed.v = true;
    await event(c, me, 'lease.granted', array, region, { epoch: ins.rows[0].epoch });
    return { granted: true, epoch: ins.rows[0].epoch, dirty: false };
  }
  const row = await lockRow(c, array, region);
  if (!row) {
    // Dropped between the two statements: insert again, once; a second miss is contention to report.
    if (again > 0) return tryAcquire(c, me, array, region, again - 1, changed);
    throw new NbdraidError('EBUSY', `lease ${array}/${region}`, 'changed hands twice while being taken; ask again');
  }
  if (row.holder === me) return { granted: true, epoch: row.epoch, dirty: row.dirty };
  if (row.holder === null) {
    changed.v = true;
    const epoch = await grant(c, array, region, me);
    await event(c, me, 'lease.granted', array, region, { epoch, dirty: row.dirty });
    return { granted: true, epoch, dirty: row.dirty };
  }
  if (row.wanted_by === null) {
    changed.v = true;
    await c.query('UPDATE region_leases SET wanted_by = $1 WHERE array_name = $2 AND region = $3', [me, array, region]);
    await event(c, me, 'lease.wanted', array, region, { holder: row.holder });
  }
  return { granted: false, holder: row.holder };
}

/** Gives a held lease up: to the controller that wants it (dirty bit and all), else free. */
export async function giveBack(c: Tx, me: number, array: string, region: number): Promise<void> {
  const row = await lockRow(c, array, region);
  if (row?.holder !== me) return;
  if (row.wanted_by !== null) {
    const epoch = await grant(c, array, region, row.wanted_by);
    await event(c, me, 'lease.handed-over', array, region, { to: row.wanted_by, epoch, dirty: row.dirty });
    return;
  }
  // A free clean lease leaves no row; a free dirty one stays, its bit inherited by the next holder.
  if (row.dirty) await c.query('UPDATE region_leases SET holder = NULL, updated_at = nbdraid_now_ms() WHERE array_name = $1 AND region = $2', [array, region]);
  else await c.query('DELETE FROM region_leases WHERE array_name = $1 AND region = $2', [array, region]);
  await event(c, me, 'lease.freed', array, region, { dirty: row.dirty });
}

/** Our leases of `array` that another controller asked for. */
export async function wantedFromMe(c: Tx, me: number, array: string): Promise<OwnedLease[]> {
  const { rows } = await c.query<OwnedLease>(`SELECT region, dirty FROM region_leases
    WHERE holder = $1 AND array_name = $2 AND wanted_by IS NOT NULL ORDER BY region`, [me, array]);
  return rows;
}

/** The way out: clears the bits of `clean`, withdraws our waits, gives back all we hold. */
export async function closeAll(c: Tx, me: number, array: string, clean: number[]): Promise<void> {
  if (clean.length > 0) await setDirty(c, me, array, clean, false);
  await c.query('UPDATE region_leases SET wanted_by = NULL WHERE array_name = $1 AND wanted_by = $2', [array, me]);
  const held = await c.query<{ region: number }>('SELECT region FROM region_leases WHERE holder = $1 AND array_name = $2 ORDER BY region', [me, array]);
  for (const { region } of held.rows) await giveBack(c, me, array, region);
}

/** Sets or clears the write-intent bit of regions we hold (a commit is durable before it returns). */
export async function setDirty(c: Tx, me: number, array: string, regions: number[], dirty: boolean): Promise<void> {
  await c.query(`UPDATE region_leases SET dirty = $1, updated_at = nbdraid_now_ms()
    WHERE array_name = $2 AND region = ANY($3::int[]) AND holder = $4`, [dirty, array, regions, me]);
  await appendEvent(c, { controller: me, kind: dirty ? 'lease.dirty' : 'lease.clean', arrayName: array, detail: { regions } });
}

/** After a resync of `regions`: forget them, and the unheld dirty leases that recorded them. */
export async function clearResync(c: Tx, me: number, array: string, regions: number[]): Promise<void> {
  await c.query('DELETE FROM resync_regions WHERE array_name = $1 AND region = ANY($2::int[])', [array, regions]);
  await c.query('DELETE FROM region_leases WHERE array_name = $1 AND region = ANY($2::int[]) AND holder IS NULL', [array, regions]);
  await appendEvent(c, { controller: me, kind: 'resync.cleared', arrayName: array, detail: { regions } });
}

async function grant(c: Tx, array: string, region: number, to: number): Promise<number> {
  const { rows } = await c.query<{ epoch: number }>(`UPDATE region_leases SET holder = $1, epoch = nextval('lease_epoch'), wanted_by = NULL,
    updated_at = nbdraid_now_ms() WHERE array_name = $2 AND region = $3 RETURNING epoch`, [to, array, region]);
  return rows[0].epoch;
}

function event(c: Tx, me: number, kind: string, array: string, region: number, detail: Record<string, unknown>): Promise<void> {
  return appendEvent(c, { controller: me, kind, arrayName: array, detail: { region, ...detail } });
}

/** Regions whose parity must be recomputed: recorded for resync, or dirty and left unheld. */
export async function pendingResync(c: Tx, array: string): Promise<number[]> {
  const { rows } = await c.query<{ region: number }>(`SELECT region FROM resync_regions WHERE array_name = $1
    UNION SELECT region FROM region_leases WHERE array_name = $1 AND holder IS NULL AND dirty ORDER BY region`, [array]);
  return rows.map((r) => r.region);
}

/** Regions whose write-intent bit is set, held or not (a dirty start's message names them). */
export async function dirtyRegions(c: Tx, array: string): Promise<number[]> {
  const { rows } = await c.query<{ region: number }>('SELECT region FROM region_leases WHERE array_name = $1 AND dirty ORDER BY region', [array]);
  return rows.map((r) => r.region);
}

/** LeaseStore.requireResync: every region of `regions` recorded for resync, by `controller` (null: the CLI). */
export async function requireResync(c: Tx, controller: number | null, array: string, regions: number[]): Promise<void> {
  await c.query(`INSERT INTO resync_regions (array_name, region, from_controller, recorded_at)
    SELECT $1, r, $2, nbdraid_now_ms() FROM unnest($3::int[]) AS r ON CONFLICT DO NOTHING`, [array, controller, regions]);
  await appendEvent(c, { controller, actor: controller === null ? 'cli' : undefined, kind: 'resync.required', arrayName: array, detail: { regions: regions.length } });
}
