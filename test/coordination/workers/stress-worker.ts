// A controller process for the stress test. It claims and completes partitions of the stress task,
// writing an audit trail outside the coordination tables: O_APPEND lines in its own file,
// "<what> <task> <idx> <controller> <pid> <monotonic ns>". The completion action appends to
// completion.log. Usage: stress-worker STATE AUDIT_DIR (create N | join TASK_ID)
import { openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Coordinator } from '../../../lib/coordination/coordinator.js';

const [stateDir, auditDir, mode, arg] = process.argv.slice(2);
const coord = Coordinator.open(stateDir, { tickMs: 20, reapMs: 100 });
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
  taskId = coord.createTask({ kind: 'stress', dataset: { n }, partitions }).id;
} else {
  taskId = Number(arg);
}
process.stdout.write(`ready ${taskId} ${coord.id}\n`);

async function main(): Promise<void> {
  for (let idle = 0; idle < 3000;) {
    const c = coord.claim({ taskId });
    if (!c) {
      idle++;
      const state = coord.tasks.require(taskId).state;
      if (state === 'DONE' || state === 'FAILED') break;
      await coord.waitForChange(50);
      continue;
    }
    const ref = { taskId, idx: c.partition.idx };
    line(audit, 'claim', taskId, ref.idx);
    if (ref.idx % 7 === 0) coord.checkpoint(ref, { half: true }, 4096);
    // The tiny work takes a millisecond, so kills land on partitions in progress.
    await new Promise((r) => setTimeout(r, 1));
    line(audit, 'work', taskId, ref.idx);
    coord.complete(ref, 4096);
    line(audit, 'complete', taskId, ref.idx);
  }
  coord.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`stress-worker: ${(err as Error).stack}\n`);
  process.exit(1);
});
