// The coordination operations of one controller on PostgreSQL, under the names and shapes the
// SQLite thread answers (AsyncDbOps: the work here, the record in record-ops.ts), each a
// transaction of its own. Liveness is the heartbeat
// bound `deadAfterMs` (T): a holder is treated as dead, and reaped, only once its heartbeat is
// older than T by the database clock.
import type pg from 'pg';
import type { AsyncDbOps, AsyncWorkOps } from '../db-thread.js';
import type { LeasePoll, OwnedLease } from '../lease-ops.js';
import type { AcquireOutcome } from '../leases.js';
import { heartbeat, isAlive, reapDead } from './controllers.js';
import { pruneEvents } from './events.js';
import { claimOne, completeOne } from './hot-path.js';
import * as leases from './leases.js';
import * as work from './partitions.js';
import { pgRecordOps } from './record-ops.js';
import { inTx } from './tx.js';

/** SQLSTATEs of lock contention: a region that hits one is still waited for at the next poll. */
const CONTENDED = new Set(['40P01', '40001', '55P03']);

/** A granted wait, with the epoch of its grant (an extra field the SQLite shape leaves out). */
export interface GrantedLease extends OwnedLease { epoch: number }

/** Everything controller `me` asks of the coordination database. */
export function pgOps(pool: pg.Pool, me: number, deadAfterMs: number): AsyncDbOps {
  return { ...pgWorkOps(pool, me, deadAfterMs), ...pgRecordOps(pool, me, deadAfterMs) };
}

/** Liveness, leases, write intent and partition work. */
export function pgWorkOps(pool: pg.Pool, me: number, deadAfterMs: number): AsyncWorkOps {
  const tx = <T>(fn: (c: pg.PoolClient) => Promise<T>, notify?: boolean | ((out: T) => boolean)) => inTx(pool, fn, notify);
  const reap = () => tx((c) => reapDead(c, me, deadAfterMs), (r) => r.length > 0);
  /** A take that tells the others only when the row moved: a refused repeat of a want is silent. */
  const take = (array: string, region: number): Promise<AcquireOutcome> => {
    const changed = { v: false };
    return tx((c) => leases.tryAcquire(c, me, array, region, 1, changed), () => changed.v);
  };
  const poll = async (array: string, waiting: number[], probe: boolean): Promise<LeasePoll> => {
    const granted: GrantedLease[] = [];
    let reaped = false;
    for (const region of waiting) {
      try {
        let out = await take(array, region);
        if (!out.granted && probe && !reaped) {
          const holder = out.holder;
          if (!(await tx((c) => isAlive(c, holder, deadAfterMs), false))) {
            reaped = true;
            await reap();
            out = await take(array, region);
          }
        }
        if (out.granted) granted.push({ region, dirty: out.dirty, epoch: out.epoch });
      } catch (err) {
        if (!CONTENDED.has((err as { code?: string }).code ?? '')) throw err;
      }
    }
    const wanted = await tx((c) => leases.wantedFromMe(c, me, array), false);
    return { wanted, granted };
  };
  return {
    heartbeat: (id) => tx((c) => heartbeat(c, id), false),
    reapDead: (reaper) => tx((c) => reapDead(c, reaper, deadAfterMs), (r) => r.length > 0),
    pruneEvents: (keep) => tx((c) => pruneEvents(c, keep), false),
    leaseTake: take,
    leaseGiveBack: (array, region) => tx((c) => leases.giveBack(c, me, array, region)),
    leasePoll: poll,
    leaseCloseAll: (array, clean) => tx((c) => leases.closeAll(c, me, array, clean)),
    markDirty: (array, regions) => tx((c) => leases.setDirty(c, me, array, regions, true)),
    markClean: (array, regions) => tx((c) => leases.setDirty(c, me, array, regions, false)),
    clearResync: (array, regions) => tx((c) => leases.clearResync(c, me, array, regions)),
    claim: (filter) => claimOne(pool, me, filter ?? {}),
    checkpoint: (ref, cp, bytesDelta) => tx((c) => work.checkpoint(c, me, ref, cp, bytesDelta)),
    complete: (ref, bytesDelta) => completeOne(pool, me, ref, bytesDelta),
    fail: (ref, reason) => tx((c) => work.fail(c, me, ref, reason)),
    release: (ref) => tx((c) => work.release(c, me, ref)),
  };
}
