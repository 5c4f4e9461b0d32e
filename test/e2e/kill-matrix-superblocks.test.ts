// Kill matrix, superblock points: a controller SIGKILLed inside a membership update (superblocks
// written on some members, not all) and inside the completion action of a rebuild. After each
// the array must assemble (the record is the truth: superblocks are brought up to it), finish
// what it must, `check` 0 mismatches, every acknowledged write intact.
// Exact points come from strace: `-P MEMBER -e inject=pwrite64:signal=SIGKILL:when=N` kills at
// the Nth pwrite64 to that member *per thread*; m3 gets only superblock writes, all of them on
// the main thread. Members are committed in slot order: dying at m3 leaves m0 and m2 updated.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import {
  startController, taskEvents, taskOf, waitTaskEnd, type ControllerProcess, type TestArray,
} from '../helpers/cluster.js';
import { withDeadline } from '../helpers/deadline.js';
import { ONE_REGION_MEMBER, healthy, writtenArray } from '../helpers/kill-matrix.js';

const FAILED = 1;

interface Examined { events: number; arrayState: string; recoveryOffset: number | null }

const examine = async (arr: TestArray, member: string): Promise<Examined> => (await arr.json<Examined[]>(['examine', member]))[0];

/** Controller under strace, SIGKILLed at its `when`-th call of `syscall` on `member` (counted per thread). */
function killedAt(t: Test, arr: TestArray, member: string, syscall: string, when: number): Promise<ControllerProcess> {
  return startController(t, arr, [], ['strace', '-f', '-qq', '-y', '-o', `${arr.dir}/strace.log`, '-P', member, '-e', `trace=${syscall}`,
    '-e', `inject=${syscall}:signal=SIGKILL:when=${when}`]);
}


t.test('SIGKILL inside a membership update: superblocks torn across members; the array assembles and rebuilds', async (t) => {
  const { arr, written } = await writtenArray(t);
  const before = await examine(arr, arr.members[3]);
  const victim = await killedAt(t, arr, arr.members[3], 'pwrite64', 1);
  const fail = arr.cli(['fail', arr.name, '--member', String(FAILED)], { allowFailure: true, timeoutMs: 30_000 });
  await withDeadline(victim.exited, 30_000, 'the controller to die at its first superblock write to m3');
  await fail;
  const [m0, m3] = [await examine(arr, arr.members[0]), await examine(arr, arr.members[3])];
  t.ok(m0.events > before.events, `m0's superblock has the change (events ${before.events} -> ${m0.events})`);
  t.equal(m3.events, before.events, 'm3 died unwritten: the update is torn across members');

  const next = await startController(t, arr);
  const rebuild = await waitTaskEnd(arr, 'rebuild', 60_000);
  t.equal(rebuild.task.state, 'DONE', `the failed member is replaced by the spare (${rebuild.task.reason ?? 'no reason'})`);
  await healthy(t, arr, written, next);
  const after = await Promise.all(arr.members.filter((_, i) => i !== FAILED).map((m) => examine(arr, m)));
  t.equal(new Set(after.map((e) => e.events)).size, 1, 'the survivors agree on events again');
});

/**
 * A victim killed at its `when`-th superblock write to m3, after the member was failed while
 * nothing served; the kill counts only if it fell inside the rebuild's completion action.
 */
async function killInCompletion(t: Test, when: number) {
  const { arr, written } = await writtenArray(t, true, ONE_REGION_MEMBER);
  await arr.cli(['fail', arr.name, '--member', String(FAILED)]);
  const victim = await killedAt(t, arr, arr.members[3], 'pwrite64', when);
  // A run whose superblock writes to m3 were fewer than `when` finishes the rebuild alive: that
  // kill point lay past its last write, and the run does not count.
  const ended = await withDeadline(Promise.race([
    victim.exited.then(() => 'killed' as const),
    waitTaskEnd(arr, 'rebuild', 30_000).then((x) => (x.task.state === 'DONE' ? 'finished' as const : 'killed' as const)),
  ]), 30_000, 'the controller to die at a superblock write').catch((err: Error) => {
    throw new Error(`${err.message}; strace: ${fs.readFileSync(`${arr.dir}/strace.log`, 'utf8').replace(/"[^"]*"\.\.\./g, '')}; controller log:\n${victim.stderr()}`);
  });
  if (ended === 'finished') {
    await victim.stop();
    return { arr, written, victim, task: undefined, events: [], inside: false };
  }
  await victim.exited;
  const task = await taskOf(arr, 'rebuild');
  const events = task ? await taskEvents(arr, task.task.id) : [];
  const inside = !!task && task.counts.COMPLETE === task.task.partitionsTotal && events.some((e) => e.kind === 'task.completing' && e.controller === victim.id);
  return { arr, written, victim, task, events, inside };
}

t.test('SIGKILL inside the completion action of a rebuild: the successor completes it once', async (t) => {
  // The victim's superblock writes to m3 (all on the main thread, where strace counts them; m3
  // gets no data) are taking the spare, then the completion, usually; a busy machine can put
  // another state write between, or leave one out. The kill point is searched from the second
  // write to the fourth, twice over (a fresh array each time), and the case is judged at the first
  // that falls inside the completion.
  let run: Awaited<ReturnType<typeof killInCompletion>> | undefined;
  for (let attempt = 0; attempt < 6 && !run?.inside; attempt++) {
    const when = 2 + (attempt % 3);
    run = await killInCompletion(t, when);
    if (!run.inside) t.comment(`a kill at superblock write ${when} to m3 fell outside the completion action; trying another`);
  }
  if (!run) return;
  const { arr, written, victim, task, events } = run;
  t.ok(task, 'a rebuild task exists');
  if (!task) return;
  t.equal(task.counts.COMPLETE, task.task.partitionsTotal, 'every partition was complete at the kill');
  t.ok(events.some((e) => e.kind === 'task.completing' && e.controller === victim.id), 'the victim had begun the completion action');
  t.notOk(events.some((e) => e.kind === 'task.done'), 'and had not finished it');
  const m0 = await examine(arr, arr.members[0]);
  const m3 = await examine(arr, arr.members[3]);
  t.not(m0.events, m3.events, `the completion's superblock update is torn (m0 ${m0.events}, m3 ${m3.events})`);

  const next = await startController(t, arr);
  const done = await waitTaskEnd(arr, 'rebuild', 60_000);
  t.equal(done.task.state, 'DONE', `the rebuild completes after all (${done.task.reason ?? 'no reason'})`);
  const after = await taskEvents(arr, done.task.id);
  t.equal(after.filter((e) => e.kind === 'task.done').length, 1, 'it is done once');
  t.ok(after.some((e) => e.kind === 'task.completing' && e.controller === next.id), 'by the successor');
  await healthy(t, arr, written, next);
});

