// The array's record, tasks and journal on PostgreSQL (RecordOps), for controller `me`: the
// other half of what the SQLite coordination thread answers. Each operation is one transaction;
// reads of several tables take one snapshot (REPEATABLE READ), as SQLite's read transaction does.
import type pg from 'pg';
import type { AsyncOps } from '../db-thread.js';
import type { RecordOps } from '../db-thread-ops.js';
import * as arrays from './arrays.js';
import * as completion from './completion.js';
import { liveCount } from './controllers.js';
import { listEvents } from './events.js';
import { dirtyRegions, pendingResync } from './leases.js';
import * as tasks from './tasks.js';
import { inTx, type Tx } from './tx.js';

export function pgRecordOps(pool: pg.Pool, me: number, deadAfterMs: number): AsyncOps<RecordOps> {
  const who = { controller: me };
  const write = <T>(fn: (c: Tx) => Promise<T>, notify?: boolean | ((out: T) => boolean)) => inTx(pool, fn, notify);
  const read = <T>(fn: (c: Tx) => Promise<T>) => inTx(pool, async (c) => {
    await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    return fn(c);
  }, false);
  return {
    arrayGet: (array) => read((c) => arrays.getArray(c, array)),
    superblockSnapshot: (array) => read(async (c) => ({
      rec: await arrays.requireArray(c, array), written: await arrays.written(c, array), unsynced: await arrays.unsynced(c, array),
    })),
    recordWritten: (array, events, state) => write((c) => arrays.recordWritten(c, array, events, state)),
    changeMember: async (array, change) => { await write((c) => arrays.changeMember(c, array, change, who), (changed) => changed); },
    assignSpare: (array, slot) => write((c) => arrays.assignSpare(c, array, slot, who), (out) => out !== undefined),
    pendingResync: (array) => read((c) => pendingResync(c, array)),
    dirtyRegions: (array) => read((c) => dirtyRegions(c, array)),
    liveControllers: () => read((c) => liveCount(c, deadAfterMs)),
    createTask: (task) => write((c) => tasks.createTask(c, task, who)),
    createTaskUnlessActive: (task) => write((c) => tasks.createTaskUnlessActive(c, task, who), (out) => out !== undefined),
    tasks: (array, activeOnly) => read((c) => tasks.listTasks(c, array, activeOnly)),
    partitions: (taskId) => read((c) => tasks.listPartitions(c, taskId)),
    activeProgress: (array) => read(async (c) => {
      const out = [];
      for (const t of await tasks.listTasks(c, array, true)) out.push(await tasks.progress(c, t));
      return out;
    }),
    writtenEvents: (array) => read(async (c) => (await arrays.written(c, array))?.events),
    events: (query) => read((c) => listEvents(c, query)),
    completionsReady: () => write(async (c) => {
      const adopted = await completion.adoptOrphans(c, me);
      return { adopted, ready: await completion.ready(c, me) };
    }, (out) => out.adopted.length > 0).then((out) => out.ready),
    completionBegin: (task) => write((c) => completion.begin(c, me, task), (began) => began),
    completionFinish: async (task, result, failure) => { await write((c) => completion.finish(c, me, task, result, failure), (moved) => moved); },
  };
}
