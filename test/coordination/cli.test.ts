// The read-only CLI over the coordination object: `nbdraid tasks|controllers|events`, human and
// --json, and the operator's pause / resume / cancel, run as real processes.
import t from 'tap';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Coordinator } from '../../lib/coordination/coordinator.js';
import { tempStateDir } from '../helpers/coordination.js';
import { killHard, spawnNode } from '../helpers/processes.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cmd', 'nbdraid.js');
const HOLDER = join(dirname(fileURLToPath(import.meta.url)), 'workers', 'lease-worker.js');

async function cli(state: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, '--state', state, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test('tasks: table, --json, pause / resume / cancel and their refusals', async (t) => {
  const dir = tempStateDir(t);
  const c = Coordinator.open(dir, { address: '127.0.0.1:10809' });
  t.teardown(() => c.close());
  const task = c.createTask({ kind: 'rebuild', arrayName: 'md0', partitions: [0, 1, 2, 3].map((i) => ({ stripeStart: i * 10, stripeEnd: i * 10 + 10 })) });
  const p = c.claim()!;
  c.complete({ taskId: task.id, idx: p.partition.idx }, 1 << 20);
  c.claim();
  const human = await cli(dir, 'tasks');
  t.equal(human.code, 0);
  t.match(human.stdout, /^ID\s+KIND\s+ARRAY\s+STATE\s+PARTITIONS\s+DONE/);
  t.match(human.stdout, new RegExp(`\\n${task.id}\\s+rebuild\\s+md0\\s+RUNNING\\s+1/4\\s+25\\.0%\\s+1\\.00 MiB\\s+c${c.id}\\s+1@c${c.id}`));
  const json = JSON.parse((await cli(dir, 'tasks', '--json')).stdout);
  t.match(json, [{ task: { id: task.id, state: 'RUNNING', partitionsDone: 1 }, counts: { COMPLETE: 1, IN_PROGRESS: 1, READY: 2 }, bytes: 1 << 20 }]);
  t.match((await cli(dir, 'tasks', 'pause', String(task.id))).stdout, /task \d+ \(rebuild\) is PAUSED/);
  const again = await cli(dir, 'tasks', 'pause', String(task.id));
  t.equal(again.code, 1);
  t.match(again.stderr, /is PAUSED; only a RUNNING task can be paused/);
  t.match((await cli(dir, 'tasks', 'resume', String(task.id))).stdout, /is RUNNING/);
  const missing = await cli(dir, 'tasks', 'cancel');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /name the task/);
  t.match((await cli(dir, 'tasks', 'cancel', '99')).stderr, /task 99: no such task/);
  t.match((await cli(dir, 'tasks', 'cancel', String(task.id))).stdout, /is CANCELLED/);
  t.match((await cli(dir, 'tasks')).stdout, /no active tasks/);
  t.match((await cli(dir, 'tasks', '--all')).stdout, /CANCELLED\s+.*cancelled by the operator/);
  t.equal(c.tasks.require(task.id).state, 'CANCELLED');
});

t.test('controllers: live, dead by flock, stopped', async (t) => {
  const dir = tempStateDir(t);
  const c = Coordinator.open(dir, { address: '127.0.0.1:10810', reapMs: 60_000 });
  t.teardown(() => c.close());
  const holder = spawnNode(HOLDER, [dir, 'hold', '', '']);
  t.teardown(() => holder.proc.kill('SIGKILL'));
  const [, hid] = await holder.waitFor(/^held (\d+)$/);
  t.match((await cli(dir, 'controllers')).stdout, new RegExp(`\\n${c.id}\\s+live\\s+${process.pid}\\s+\\S+\\s+127\\.0\\.0\\.1:10810[^\\n]*\\n${hid}\\s+live`));
  await killHard(holder);
  const after = await cli(dir, 'controllers', '--json');
  t.match(JSON.parse(after.stdout), [{ id: c.id, alive: true }, { id: Number(hid), state: 'live', alive: false }]);
  t.match((await cli(dir, 'controllers')).stdout, /dead \(not yet reaped\)/);
  c.controllers.reapDead(c.id);
  t.notMatch((await cli(dir, 'controllers')).stdout, new RegExp(`\\n${hid}\\s`), 'ended controllers hidden by default');
  t.match((await cli(dir, 'controllers', '--all')).stdout, new RegExp(`\\n${hid}\\s+dead`));
});

t.test('events: newest first limit, filters, --json', async (t) => {
  const dir = tempStateDir(t);
  const c = Coordinator.open(dir);
  t.teardown(() => c.close());
  const task = c.createTask({ kind: 'check', arrayName: 'md0', partitions: [{ stripeStart: 0, stripeEnd: 4 }] });
  c.claim();
  const json = JSON.parse((await cli(dir, 'events', '--json', '--limit', '2')).stdout);
  t.same(json.map((e: { kind: string }) => e.kind), ['task.created', 'partition.claimed']);
  t.match(json[1], { actor: `controller ${c.id}`, taskId: task.id, partitionIdx: 0 });
  const human = await cli(dir, 'events', '--task', String(task.id));
  t.match(human.stdout, /^ID\s+TIME\s+ACTOR\s+EVENT/);
  t.match(human.stdout, /task\.created\s+md0/);
  t.notMatch(human.stdout, /controller\.registered/);
  const bad = await cli(dir, 'events', '--limit', '0');
  t.equal(bad.code, 1);
  t.match(bad.stderr, /--limit: must be a positive integer/);
});
