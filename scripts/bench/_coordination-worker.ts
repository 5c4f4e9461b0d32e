// A process of the coordination benchmark. Prints "ready", waits for "go" on stdin, then:
//   claims STATE      - claim + complete partitions until none is left; prints "claims <n> <ms>"
//   handover STATE N  - takes region 0 from the other process N times; prints "handover <ms,...>"
//   pg-claims URI, pg-handover URI N - the same on PostgreSQL (_coordination-pg.ts)
//   pg-cache-handover URI N - the hand-over on PostgreSQL through a Coordinator's lease cache,
//                     exactly as a serving controller takes a region (the SQLite handover's path)
import { createInterface } from 'node:readline';
import { Coordinator, type LocalCoordinator } from '../../lib/coordination/coordinator.js';
import { pgClaims, pgHandover } from './_coordination-pg.js';

const [mode, where, arg] = process.argv.slice(2);
const tickMs = Number(process.env.TICK_MS ?? 10);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Says "ready" (connected, so set-up is not timed) and resolves on "go". */
function gate(): Promise<void> {
  process.stdout.write('ready\n');
  return new Promise((resolve) => { createInterface({ input: process.stdin }).once('line', () => resolve()); });
}

function claims(coord: LocalCoordinator): string {
  const t0 = performance.now();
  let n = 0;
  for (;;) {
    const c = coord.claim();
    if (!c) break;
    coord.complete({ taskId: c.task.id, idx: c.partition.idx });
    n++;
  }
  return `claims ${n} ${(performance.now() - t0).toFixed(1)}`;
}

async function handover(coord: Coordinator, samples: number): Promise<string> {
  const leases = coord.leases('bench');
  const out: number[] = [];
  const deadline = Date.now() + 60_000;
  while (out.length < samples && Date.now() < deadline) {
    // Wait until the other process holds the region, then time how long taking it back takes.
    if (leases.held().includes(0)) {
      await sleep(1);
      continue;
    }
    const t0 = performance.now();
    await leases.acquire(0, { write: false });
    out.push(performance.now() - t0);
    leases.release(0, { write: false });
  }
  // The first acquire found the region free: not a hand-over.
  return `handover ${out.slice(1).map((v) => v.toFixed(2)).join(',')}`;
}

async function sqlite(): Promise<string> {
  const coord = Coordinator.open(where, { tickMs });
  await gate();
  const line = mode === 'claims' ? claims(coord) : await handover(coord, Number(arg));
  await coord.close();
  return line;
}

async function pgCache(): Promise<string> {
  const coord = await Coordinator.connect({ kind: 'postgres', uri: where, deadAfterMs: 60_000 });
  await gate();
  const line = await handover(coord, Number(arg));
  await coord.close();
  return line;
}

const work = mode === 'pg-claims' ? pgClaims(where, gate)
  : mode === 'pg-cache-handover' ? pgCache()
  : mode === 'pg-handover' ? pgHandover(where, Number(arg), tickMs, gate)
    : sqlite();
work.then((line) => {
  process.stdout.write(`${line}\n`);
  process.exit(0);
}, (err: unknown) => {
  process.stderr.write(`coordination bench worker: ${(err as Error).stack}\n`);
  process.exit(1);
});
