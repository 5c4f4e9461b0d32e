// A controller process for the stress test, on either backend: WHERE is a state directory
// (SQLite) or a postgres:// URI (PostgreSQL, T from NBDRAID_TEST_DEAD_AFTER_MS, default 1000).
// It claims and completes partitions of the stress task through the asynchronous seam a serving
// controller uses, writing an audit trail outside the coordination tables: O_APPEND lines in its
// own file, "<what> <task> <idx> <controller> <pid> <monotonic ns>". The completion action appends
// to completion.log. Usage: stress-worker WHERE AUDIT_DIR (create N | join TASK_ID)
import { openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Coordinator } from '../../../lib/coordination/coordinator.js';
import { coordinationTarget } from '../../../lib/coordination/target.js';

/** The array the stress task belongs to (tasks are looked up by array). */
const STRESS_ARRAY = 'stress';

const [where, auditDir, mode, arg] = process.argv.slice(2);
const WORK_MS = Number(process.env.NBDRAID_TEST_WORK_MS ?? 5);
const pg = where.startsWith('postgres');
const target = coordinationTarget(pg ? '' : where, pg ? where : undefined, Number(process.env.NBDRAID_TEST_DEAD_AFTER_MS ?? 1000));
const coord = await Coordinator.connect(target, { tickMs: 20, reapMs: 100 });
const audit = openSync(join(auditDir, `worker-${process.pid}.log`), 'a');
const completionLog = openSync(join(auditDir, 'completion.log'), 'a');

const line = (fd: number, what: string, task: number, idx: number): void => {
  writeSync(fd, `${what} ${task} ${idx} ${coord.id} ${process.pid} ${process.hrtime.bigint()}\n`);
};

coord.onCompletion('stress', (task) => {
  line(completionLog, 'completion', task.id, -1);
  return { completedBy: coord.id };
});

let taskId: number;
if (mode === 'create') {
  const n = Number(arg);
  const partitions = Array.from({ length: n }, (_, i) => ({ stripeStart: i * 8, stripeEnd: i * 8 + 8, instructions: { i } }));
  taskId = (await coord.async.createTask({ kind: 'stress', arrayName: STRESS_ARRAY, dataset: { n }, partitions })).id;
} else {
  taskId = Number(arg);
}
process.stdout.write(`ready ${taskId} ${coord.id}\n`);

async function taskState(): Promise<string | undefined> {
  return (await coord.thread.ops.tasks(STRESS_ARRAY, false)).find((x) => x.id === taskId)?.state;
}

async function main(): Promise<void> {
  for (let idle = 0; idle < 3000;) {
    const c = await coord.async.claim({ taskId });
    if (!c) {
      idle++;
      const state = await taskState();
      if (state === 'DONE' || state === 'FAILED') break;
      await coord.waitForChange(50);
      continue;
    }
    const ref = { taskId, idx: c.partition.idx };
    line(audit, 'claim', taskId, ref.idx);
    if (ref.idx % 7 === 0) await coord.async.checkpoint(ref, { half: true }, 4096);
    // The tiny work (NBDRAID_TEST_WORK_MS) takes longer than the claim and completion around it,
    // so that kills land on partitions in progress.
    await new Promise((r) => setTimeout(r, WORK_MS));
    line(audit, 'work', taskId, ref.idx);
    await coord.async.complete(ref, 4096);
    line(audit, 'complete', taskId, ref.idx);
  }
  await coord.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`stress-worker: ${(err as Error).stack}\n`);
  process.exit(1);
});
