// The statements a controller runs off its I/O thread, by name: the worker thread (db-thread.ts)
// opens its own connection to the state directory's database and answers these. Every argument
// and result is plain data, so another backend can stand behind the same names.
import type { Database } from 'better-sqlite3';
import { ControllerRegistry, type ReapResult } from './controllers.js';
import { EventLog } from './events.js';
import { type LeasePoll, type LeaseSteps, leaseSteps } from './lease-ops.js';
import { type AcquireOutcome, LeaseStore } from './leases.js';
import { PartitionWork, type ClaimFilter, type Claimed, type PartitionRef } from './partitions.js';
import type { PartitionState, TaskState } from './records.js';

export interface DbOps {
  heartbeat(id: number): void;
  reapDead(reaper: number): ReapResult[];
  pruneEvents(keep: number): void;
  leaseTake(array: string, region: number): AcquireOutcome;
  leaseGiveBack(array: string, region: number): void;
  leasePoll(array: string, waiting: number[], probe: boolean): LeasePoll;
  leaseCloseAll(array: string, clean: number[]): void;
  markDirty(array: string, regions: number[]): void;
  markClean(array: string, regions: number[]): void;
  clearResync(array: string, regions: number[]): void;
  claim(filter: ClaimFilter): Claimed | undefined;
  checkpoint(ref: PartitionRef, checkpoint: unknown, bytesDelta: number): TaskState;
  complete(ref: PartitionRef, bytesDelta: number): boolean;
  fail(ref: PartitionRef, reason: string): PartitionState;
  release(ref: PartitionRef): void;
}

export type DbOpName = keyof DbOps;

/** The operations of controller `controller` over connection `db`. */
export function dbOps(db: Database, stateDir: string, controller: number): DbOps {
  const controllers = new ControllerRegistry(db, stateDir);
  const events = new EventLog(db);
  const work = new PartitionWork(db, controller);
  const arrays = new Map<string, { store: LeaseStore; steps: LeaseSteps }>();
  const of = (array: string) => {
    let a = arrays.get(array);
    if (!a) {
      const store = new LeaseStore(db, controller, array);
      arrays.set(array, (a = { store, steps: leaseSteps(store, controllers, controller) }));
    }
    return a;
  };
  const leases = (array: string): LeaseSteps => of(array).steps;
  return {
    heartbeat: (id) => controllers.heartbeat(id),
    reapDead: (reaper) => controllers.reapDead(reaper),
    pruneEvents: (keep) => { events.prune(keep); },
    leaseTake: (array, region) => leases(array).take(region),
    leaseGiveBack: (array, region) => leases(array).giveBack(region),
    leasePoll: (array, waiting, probe) => leases(array).poll(waiting, probe),
    leaseCloseAll: (array, clean) => leases(array).closeAll(clean),
    markDirty: (array, regions) => leases(array).markDirty(regions),
    markClean: (array, regions) => leases(array).markClean(regions),
    clearResync: (array, regions) => of(array).store.clearResync(regions),
    claim: (filter) => work.claim(filter),
    checkpoint: (ref, checkpoint, bytesDelta) => work.checkpoint(ref, checkpoint, bytesDelta),
    complete: (ref, bytesDelta) => work.complete(ref, bytesDelta),
    fail: (ref, reason) => work.fail(ref, reason),
    release: (ref) => work.release(ref),
  };
}
