// The PostgreSQL side of a coordination benchmark process (see _coordination-worker.ts): the same
// two measurements over PgBackend's operations, with NOTIFY waking the waiter and the holder.
import { PgBackend, PgChangeListener } from '../../lib/coordination/pg/index.js';
import type { AsyncWorkOps } from '../../lib/coordination/db-thread.js';

/** T for the benchmark: far above any pause, so nobody is reaped mid-run. */
const DEAD_AFTER_MS = 60_000;
const REGION = 0;
const ARRAY = 'bench';

export async function pgClaims(uri: string, gate: () => Promise<void>): Promise<string> {
  const backend = await PgBackend.open(uri, { deadAfterMs: DEAD_AFTER_MS, poolSize: 1 });
  const me = await backend.register();
  const ops = backend.ops(me.id);
  await gate();
  const t0 = performance.now();
  let n = 0;
  for (;;) {
    const c = await ops.claim({});
    if (!c) break;
    await ops.complete({ taskId: c.task.id, idx: c.partition.idx }, 0);
    n++;
  }
  const ms = performance.now() - t0;
  await backend.stop(me.id);
  await backend.close();
  return `claims ${n} ${ms.toFixed(1)}`;
}

/** Wakes on the next NOTIFY after `seen`, or after `ms` (a notification may land before we wait). */
class Changes {
  count = 0;
  private wake: (() => void) | undefined;
  constructor(listener: PgChangeListener) {
    listener.subscribe(() => { this.count++; this.wake?.(); });
  }
  after(seen: number, ms: number): Promise<void> {
    if (this.count > seen) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void { clearTimeout(timer); resolve(); }
      this.wake = done;
    });
  }
}

/**
 * Two processes pass region 0 back and forth: each takes it, and, holding it, gives it back as
 * soon as the other wants it. A sample is the time from a take refused (a hand-over to wait for)
 * to its grant. A holder that sees no want for a second takes the other to be finished.
 */
export async function pgHandover(uri: string, samples: number, tickMs: number, gate: () => Promise<void>): Promise<string> {
  const backend = await PgBackend.open(uri, { deadAfterMs: DEAD_AFTER_MS, poolSize: 2 });
  const listener = await PgChangeListener.open(uri);
  const changes = new Changes(listener);
  const me = await backend.register();
  const ops: AsyncWorkOps = backend.ops(me.id);
  await gate();
  const out: number[] = [];
  const deadline = Date.now() + 60_000;
  while (out.length < samples && Date.now() < deadline) {
    const t0 = performance.now();
    let seen = changes.count;
    let granted = (await ops.leaseTake(ARRAY, REGION)).granted;
    const waited = !granted;
    while (!granted && Date.now() < deadline) {
      await changes.after(seen, tickMs);
      seen = changes.count;
      granted = (await ops.leasePoll(ARRAY, [REGION], false)).granted.some((g) => g.region === REGION);
    }
    if (waited) out.push(performance.now() - t0);
    if (!(await holdUntilWanted(ops, changes, tickMs, deadline))) break;
  }
  await ops.leaseCloseAll(ARRAY, []);
  await backend.stop(me.id);
  await listener.close();
  await backend.close();
  return `handover ${out.map((v) => v.toFixed(2)).join(',')}`;
}

/** Holds the region until the other process wants it, then gives it back; false if it never does. */
async function holdUntilWanted(ops: AsyncWorkOps, changes: Changes, tickMs: number, deadline: number): Promise<boolean> {
  const quiet = Date.now() + 1000;
  for (;;) {
    const seen = changes.count;
    if ((await ops.leasePoll(ARRAY, [], false)).wanted.some((w) => w.region === REGION)) {
      await ops.leaseGiveBack(ARRAY, REGION);
      return true;
    }
    if (Date.now() > Math.min(quiet, deadline)) return false;
    await changes.after(seen, tickMs);
  }
}
