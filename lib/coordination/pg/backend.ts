// The PostgreSQL coordination backend as a whole: one pool, controllers registered and stopped
// on it, arrays and tasks created on it, and each controller's operations (pgOps).
import type pg from 'pg';
import type { ReapResult } from '../controllers.js';
import type { AsyncDbOps } from '../db-thread.js';
import type { Actor, ArrayRecord, NewArray } from '../arrays.js';
import type { TaskRecord } from '../records.js';
import type { NewTask } from '../tasks.js';
import { createArray } from './arrays.js';
import { endController, registerController, type PgController } from './controllers.js';
import { PgChannel } from './channel.js';
import { openPg } from './open.js';
import { pgOps } from './ops.js';
import { createTask } from './tasks.js';
import { inTx } from './tx.js';

export interface PgBackendOptions {
  /** T: a controller whose heartbeat is older than this (database clock) is dead. */
  deadAfterMs: number;
  /** Connections in the pool. */
  poolSize?: number;
  /** Bound on a connection attempt and on each query, client side (ms; 0: none). */
  timeoutMs?: number;
}

export class PgBackend {
  private constructor(readonly pool: pg.Pool, readonly uri: string, readonly deadAfterMs: number) {}

  static async open(uri: string, opts: PgBackendOptions): Promise<PgBackend> {
    return new PgBackend(await openPg(uri, { max: opts.poolSize, timeoutMs: opts.timeoutMs }), uri, opts.deadAfterMs);
  }

  /** A new live controller row (heartbeat now, a fresh epoch). */
  register(address: string | null = null): Promise<PgController> {
    return inTx(this.pool, (c) => registerController(c, address, this.deadAfterMs));
  }

  /** Ends controller `id` cleanly: its work goes back to the pool at once, without waiting for T. */
  stop(id: number): Promise<ReapResult | undefined> {
    return inTx(this.pool, (c) => endController(c, id, 'stopped', null));
  }

  createTask(t: NewTask, who: Actor = { actor: 'cli' }): Promise<TaskRecord> {
    return inTx(this.pool, (c) => createTask(c, t, who));
  }

  /** A new array record, as ArrayRegistry.create (EEXIST when the name is taken). */
  createArray(rec: NewArray, who: Actor = { actor: 'cli' }): Promise<ArrayRecord> {
    return inTx(this.pool, (c) => createArray(c, rec, who));
  }

  /** Controller `id`'s operations. */
  ops(id: number): AsyncDbOps {
    return pgOps(this.pool, id, this.deadAfterMs);
  }

  /** Controller `id`'s channel: its operations, change notices and the superblock lock. */
  channel(id: number): Promise<PgChannel> {
    return PgChannel.open(this.pool, this.uri, id, this.deadAfterMs);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
