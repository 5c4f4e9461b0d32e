// A controller process for the region lease tests. STATE is a state directory (SQLite) or a
// postgres:// URI (PostgreSQL, with T from NBDRAID_TEST_DEAD_AFTER_MS, default 1000). Usage:
//   lease-worker STATE hammer SLOT_FILE REGIONS HOLDS  - random holds; each writes our id into the
//       region's slot of SLOT_FILE and checks nobody changed it before release; prints
//       "done <holds> <violations> <handed-over>"
//   lease-worker STATE hold R1,R2 W1,W2                - holds regions (writes on W*), prints "held <id>",
//       waits to be killed; if nobody does within HOLD_MAX_MS it gives up, prints "hold expired", exits 2
import { appendFileSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { Coordinator } from '../../../lib/coordination/coordinator.js';
import { coordinationTarget } from '../../../lib/coordination/target.js';

const [where, mode, ...args] = process.argv.slice(2);
const pg = where.startsWith('postgres');
const target = coordinationTarget(pg ? '' : where, pg ? where : undefined, Number(process.env.NBDRAID_TEST_DEAD_AFTER_MS ?? 1000));
const coord = await Coordinator.connect(target, { tickMs: 5, reapMs: 100 });
/** The longest a hold lasts when nobody kills the worker. */
const HOLD_MAX_MS = 120_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function hammer(slotFile: string, regions: number, holds: number): Promise<void> {
  let wanted = 0;
  const leases = coord.leases('md0', { onWanted: () => wanted++, idleCleanMs: 50 });
  const fd = openSync(slotFile, 'r+');
  const me = Buffer.alloc(8);
  me.writeBigUInt64LE(BigInt(coord.id));
  let violations = 0, started = 0, done = 0;
  const deadline = Date.now() + 60_000;
  // Start together with the other hammering process, so that the holds overlap: each first takes
  // a lease of its own (its coordination thread is up), says so in a file next to the slots, and
  // waits until both have.
  const own = regions + coord.id;
  await leases.acquire(own, { write: false });
  leases.release(own, { write: false });
  const ready = `${slotFile}.ready`;
  appendFileSync(ready, `${coord.id}\n`);
  const count = (): number => readFileSync(ready, 'utf8').split('\n').filter(Boolean).length;
  while (count() < 2 && Date.now() < deadline) await sleep(5);
  const loop = async (): Promise<void> => {
    while (started < holds && Date.now() < deadline) {
      started++;
      const region = Math.floor(Math.random() * regions);
      const write = Math.random() < 0.5;
      await leases.acquire(region, { write });
      writeSync(fd, me, 0, 8, region * 8);
      await sleep(Math.random() < 0.5 ? 0 : 1);
      const seen = Buffer.alloc(8);
      readSync(fd, seen, 0, 8, region * 8);
      if (!seen.equals(me)) violations++;
      leases.release(region, { write });
      done++;
    }
  };
  await Promise.all([loop(), loop(), loop()]);
  const token = leases.flushToken();
  leases.flushed(token);
  process.stdout.write(`done ${done} ${violations} ${wanted}\n`);
  await coord.close();
}

async function hold(regions: number[], writes: number[]): Promise<void> {
  const leases = coord.leases('md0');
  for (const r of regions) await leases.acquire(r, { write: writes.includes(r) });
  process.stdout.write(`held ${coord.id}\n`);
  // Bounded in count and time: a test that forgets to kill us (or dies itself) does not leave us
  // holding leases forever. The test kills us long before this.
  const until = Date.now() + HOLD_MAX_MS;
  for (let i = 0; i < HOLD_MAX_MS / 100 && Date.now() < until; i++) await sleep(100);
  process.stdout.write('hold expired\n');
  await coord.close();
  process.exit(2);
}


const list = (s: string | undefined): number[] => (s ? s.split(',').filter(Boolean).map(Number) : []);
const run = mode === 'hammer' ? hammer(args[0], Number(args[1]), Number(args[2])) : hold(list(args[0]), list(args[1]));
run.catch((err: unknown) => {
  process.stderr.write(`lease-worker: ${(err as Error).stack}\n`);
  process.exit(1);
});
