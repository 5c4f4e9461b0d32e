// A process of the coordination benchmark. Prints "ready", waits for "go" on stdin, then:
//   claims STATE      - claim + complete partitions until none is left; prints "claims <n> <ms>"
//   handover STATE N  - takes region 0 from the other process N times; prints "handover <ms,...>"
import { createInterface } from 'node:readline';
import { Coordinator } from '../../lib/coordination/coordinator.js';

const [mode, stateDir, arg] = process.argv.slice(2);
const coord = Coordinator.open(stateDir, { tickMs: Number(process.env.TICK_MS ?? 10) });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function claims(): void {
  const t0 = performance.now();
  let n = 0;
  for (;;) {
    const c = coord.claim();
    if (!c) break;
    coord.complete({ taskId: c.task.id, idx: c.partition.idx });
    n++;
  }
  process.stdout.write(`claims ${n} ${(performance.now() - t0).toFixed(1)}\n`);
}

async function handover(samples: number): Promise<void> {
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
  process.stdout.write(`handover ${out.slice(1).map((v) => v.toFixed(2)).join(',')}\n`);
}

process.stdout.write('ready\n');
createInterface({ input: process.stdin }).once('line', () => {
  const work = mode === 'claims' ? Promise.resolve(claims()) : handover(Number(arg));
  work.then(() => {
    coord.close();
    process.exit(0);
  }, (err: unknown) => {
    process.stderr.write(`coordination bench worker: ${(err as Error).stack}\n`);
    process.exit(1);
  });
});
