// Controllers on PostgreSQL. With hosts that share no kernel there is no flock: a controller's
// life is its row, renewed by heartbeats stamped with the database clock (now()), so the hosts'
// clocks never meet. It is dead when its heartbeat is older than the bound T; only then is it
// reaped, and what it held (partitions, leases, initiated tasks) passes on as in ../controllers.ts.
import { hostname } from 'node:os';
import { NbdraidError } from '../../errors.js';
import type { ControllerRecord, ControllerState, ReapResult } from '../controllers.js';
import { appendEvent } from './events.js';
import type { Tx } from './tx.js';

export interface PgController { id: number; epoch: number }

/** A new live row; `deadAfterMs` is the T this controller fences itself by, and is judged by. */
export async function registerController(c: Tx, address: string | null, deadAfterMs: number | null = null): Promise<PgController> {
  const { rows } = await c.query<PgController>(`INSERT INTO controllers (pid, host, address, state, started_at, heartbeat_at, dead_after_ms)
    VALUES ($1, $2, $3, 'live', nbdraid_now_ms(), nbdraid_now_ms(), $4) RETURNING id, epoch`, [process.pid, hostname(), address, deadAfterMs]);
  await appendEvent(c, { controller: rows[0].id, kind: 'controller.registered', detail: { pid: process.pid, address, epoch: rows[0].epoch } });
  return rows[0];
}

/** Renews `id`'s life; a controller already reaped is told so (it must stop and register again). */
export async function heartbeat(c: Tx, id: number): Promise<void> {
  const r = await c.query(`UPDATE controllers SET heartbeat = now(), heartbeat_at = nbdraid_now_ms() WHERE id = $1 AND state = 'live'`, [id]);
  if (r.rowCount === 0) throw new NbdraidError('ESTALE', `controller ${id}`, 'is no longer live (reaped after a missed heartbeat); register again');
}

/** Live in the database's eyes: its row says live and its heartbeat is within `boundMs`. */
export async function isAlive(c: Tx, id: number, boundMs: number): Promise<boolean> {
  const { rows } = await c.query(`SELECT 1 FROM controllers WHERE id = $1 AND state = 'live'
    AND heartbeat >= now() - make_interval(secs => COALESCE(dead_after_ms, $2)::float8 / 1000)`, [id, boundMs]);
  return rows.length === 1;
}

/** Reaps every live controller but `reaper` whose heartbeat is older than its own T (`boundMs` for a row without one). */
export async function reapDead(c: Tx, reaper: number | null, boundMs: number): Promise<ReapResult[]> {
  const { rows } = await c.query<{ id: number }>(`SELECT id FROM controllers WHERE state = 'live' AND id IS DISTINCT FROM $1::bigint
    AND heartbeat < now() - make_interval(secs => COALESCE(dead_after_ms, $2)::float8 / 1000) ORDER BY id FOR UPDATE SKIP LOCKED`, [reaper, boundMs]);
  const out: ReapResult[] = [];
  for (const { id } of rows) {
    const r = await endController(c, id, 'dead', reaper);
    if (r) out.push(r);
  }
  return out;
}

/**
 * Partitions IN_PROGRESS under `id` return to READY with their checkpoints; its leases are
 * dropped, dirty ones recorded for resync; its waits withdrawn; the tasks it initiated pass to
 * `heir` (NULL: the next live controller adopts them), an interrupted completion back to RUNNING.
 */
export async function endController(c: Tx, id: number, state: 'dead' | 'stopped', heir: number | null): Promise<ReapResult | undefined> {
  const ended = await c.query(`UPDATE controllers SET state = $1, ended_at = nbdraid_now_ms() WHERE id = $2 AND state = 'live'`, [state, id]);
  if (ended.rowCount === 0) return undefined;
  const parts = await c.query<{ taskId: number; idx: number }>(`UPDATE partitions SET state = 'READY', owner = NULL, updated_at = nbdraid_now_ms()
    WHERE owner = $1 AND state = 'IN_PROGRESS' RETURNING task_id AS "taskId", idx`, [id]);
  const partitions = parts.rows.sort((a, b) => a.taskId - b.taskId || a.idx - b.idx);
  const dirty = await c.query<{ arrayName: string; region: number }>(`SELECT array_name AS "arrayName", region FROM region_leases
    WHERE holder = $1 AND dirty ORDER BY array_name, region`, [id]);
  await c.query(`INSERT INTO resync_regions (array_name, region, from_controller, recorded_at)
    SELECT array_name, region, holder, nbdraid_now_ms() FROM region_leases WHERE holder = $1 AND dirty ON CONFLICT DO NOTHING`, [id]);
  const leasesFreed = (await c.query('DELETE FROM region_leases WHERE holder = $1', [id])).rowCount ?? 0;
  await c.query('UPDATE region_leases SET wanted_by = NULL WHERE wanted_by = $1', [id]);
  const tasks = await c.query<{ id: number; state: string }>(`SELECT id, state FROM tasks WHERE initiator = $1
    AND state IN ('RUNNING', 'PAUSED', 'COMPLETING') ORDER BY id`, [id]);
  // The heir must be live: a reap answered after its reaper stopped leaves the tasks NULL, for the next live controller.
  await c.query(`UPDATE tasks SET initiator = (SELECT id FROM controllers WHERE id = $1 AND state = 'live'),
    state = CASE state WHEN 'COMPLETING' THEN 'RUNNING' ELSE state END,
    updated_at = nbdraid_now_ms() WHERE initiator = $2 AND state IN ('RUNNING', 'PAUSED', 'COMPLETING')`, [heir, id]);
  const actor = heir === null ? { actor: state === 'dead' ? 'reaper' : `controller ${id}` } : { controller: heir };
  const dirtyRegions = dirty.rows;
  await appendEvent(c, { ...actor, kind: `controller.${state}`, detail: { controller: id, partitions: partitions.length, leasesFreed, dirtyRegions } });
  for (const p of partitions) await appendEvent(c, { ...actor, kind: 'partition.released', taskId: p.taskId, partitionIdx: p.idx, detail: { from: id, why: state } });
  for (const t of tasks.rows) {
    await appendEvent(c, { ...actor, kind: t.state === 'COMPLETING' ? 'task.completion-interrupted' : 'task.adopted', taskId: t.id, detail: { from: id, to: heir } });
  }
  return { controller: id, partitions, leasesFreed, dirtyRegions, tasksAdopted: tasks.rows.map((t) => t.id) };
}

/** Controllers live in the database's eyes (row live, heartbeat within `boundMs`). */
export async function liveCount(c: Tx, boundMs: number): Promise<number> {
  const { rows } = await c.query<{ n: number }>(`SELECT count(*) AS n FROM controllers WHERE state = 'live'
    AND heartbeat >= now() - make_interval(secs => COALESCE(dead_after_ms, $1)::float8 / 1000)`, [boundMs]);
  return rows[0].n;
}

/** Every controller row, oldest first, with whether it is live in the database's eyes (heartbeat within `boundMs`). */
export async function listControllers(c: Tx, boundMs: number): Promise<(ControllerRecord & { alive: boolean })[]> {
  const { rows } = await c.query<{ id: number; pid: number; host: string; address: string | null; state: ControllerState;
    started_at: number; heartbeat_at: number; ended_at: number | null; alive: boolean }>(`SELECT *, (state = 'live'
    AND heartbeat >= now() - make_interval(secs => COALESCE(dead_after_ms, $1)::float8 / 1000)) AS alive FROM controllers ORDER BY id`, [boundMs]);
  return rows.map((r) => ({
    id: r.id, pid: r.pid, host: r.host, lockFile: '', address: r.address, state: r.state,
    startedAt: r.started_at, heartbeatAt: r.heartbeat_at, endedAt: r.ended_at, alive: r.alive,
  }));
}
