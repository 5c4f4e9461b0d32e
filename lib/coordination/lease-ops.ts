// The lease protocol's statements, as the holder's cache (lease-cache.ts) asks for them. They
// run where the cache does not: on the coordination thread (db-thread-ops.ts), whose connection
// answers in the order it was asked, so each answer reflects every earlier call of ours. The
// same steps run in-process for callers that have no thread (leaseOpsOver).
import type { ControllerRegistry } from './controllers.js';
import type { AcquireOutcome, LeaseStore } from './leases.js';

/** A region the database says is ours, with its write-intent bit. */
export interface OwnedLease { region: number; dirty: boolean }

/** What a poll found: leases of ours another controller wants, and waits of ours now granted. */
export interface LeasePoll { wanted: OwnedLease[]; granted: OwnedLease[] }

/** The lease statements of one array, as promises answered in call order. */
export interface LeaseOps {
  /** Takes the lease, or marks it wanted (a dead holder is reaped by the polls that follow). */
  take(region: number): Promise<AcquireOutcome>;
  /** Gives the lease back: to the controller that wants it, else free. */
  giveBack(region: number): Promise<void>;
  /** What changed for us: leases wanted from us, and which of `waiting` are ours now. */
  poll(waiting: number[], probe: boolean): Promise<LeasePoll>;
  /** The way out: clears the bits of `clean`, withdraws our waits, gives back all we hold. */
  closeAll(clean: number[]): Promise<void>;
  markDirty(regions: number[]): Promise<void>;
  markClean(regions: number[]): Promise<void>;
}

/** The synchronous steps behind LeaseOps, over one connection's store and registry. */
export interface LeaseSteps {
  take(region: number): AcquireOutcome;
  giveBack(region: number): void;
  poll(waiting: number[], probe: boolean): LeasePoll;
  closeAll(clean: number[]): void;
  markDirty(regions: number[]): void;
  markClean(regions: number[]): void;
}

export function leaseSteps(store: LeaseStore, controllers: ControllerRegistry, me: number): LeaseSteps {
  /** Reaps the holder of an ungranted lease if it died (its flock is free), then asks again. */
  const reapAndRetry = (region: number, out: AcquireOutcome): AcquireOutcome => {
    if (out.granted || controllers.isAlive(out.holder)) return out;
    controllers.reapDead(me);
    return store.tryAcquire(region);
  };
  return {
    take: (region) => store.tryAcquire(region),
    giveBack: (region) => store.yield(region),
    poll: (waiting, probe) => {
      const granted: OwnedLease[] = [];
      let reaped = false;
      for (const region of waiting) {
        let out: AcquireOutcome;
        try {
          out = store.tryAcquire(region);
          if (!out.granted && probe && !reaped && !controllers.isAlive(out.holder)) {
            reaped = true;
            out = reapAndRetry(region, out);
          }
        } catch {
          continue; // (busy) still waiting: the next poll asks again; what was granted stands
        }
        if (out.granted) granted.push({ region, dirty: out.dirty });
      }
      return { wanted: store.wanted().map(({ region, dirty }) => ({ region, dirty })), granted };
    },
    closeAll: (clean) => {
      if (clean.length > 0) store.markClean(clean);
      store.unwantAll();
      for (const n of store.held()) store.yield(n);
    },
    markDirty: (regions) => store.markDirty(regions),
    markClean: (regions) => store.markClean(regions),
  };
}

/** LeaseOps running the steps in this thread (tests, and tools without a coordination thread). */
export function leaseOpsOver(steps: LeaseSteps): LeaseOps {
  const run = <T>(f: () => T): Promise<T> => {
    try {
      return Promise.resolve(f());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  };
  return {
    take: (region) => run(() => steps.take(region)),
    giveBack: (region) => run(() => steps.giveBack(region)),
    poll: (waiting, probe) => run(() => steps.poll(waiting, probe)),
    closeAll: (clean) => run(() => steps.closeAll(clean)),
    markDirty: (regions) => run(() => steps.markDirty(regions)),
    markClean: (regions) => run(() => steps.markClean(regions)),
  };
}
