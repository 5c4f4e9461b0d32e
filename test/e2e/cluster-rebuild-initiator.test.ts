// The controller that initiated a rebuild (the one that took the spare) is SIGKILLed in the middle
// of it: a surviving controller adopts the task, the survivors finish its partitions, and the
// completion action (spare in sync, array optimal) runs exactly once, by the adopter. Clients keep
// writing and verifying through the survivors; the spare ends up equal to the XOR of the others.
import t from 'tap';
import {
  MiB, compareRebuilt, createArray, fioVerify, scrub, startController, startFio, taskEvents, taskOf, waitFor, waitTaskEnd,
} from '../helpers/cluster.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 64 * MiB;
const FAILED = 1;

t.test('the initiator of a rebuild is SIGKILLed: the task is adopted and completed once', async (tt) => {
  const arr = await createArray(tempDir(tt), { memberSize: MEMBER, spare: true });
  await arr.cli(['throttle', arr.name, '--min', '6', '--max', '6']);
  const ctls = await Promise.all([0, 1, 2].map(() => startController(tt, arr)));
  const before = { uri: ctls[0].uri, offset: 0, size: 48 * MiB };
  await fioVerify([before], { runtime: 60 });

  await arr.cli(['fail', arr.name, '--member', String(FAILED)]);
  const running = await waitFor('the rebuild to start', async () => {
    const task = await taskOf(arr, 'rebuild');
    return task && task.task.state === 'RUNNING' && task.inProgress.length > 0 ? task : undefined;
  }, 30_000, 100);
  const initiator = ctls.find((c) => c.id === running.task.initiator);
  tt.ok(initiator, `the rebuild's initiator is one of ours (controller ${running.task.initiator})`);
  if (!initiator) return;
  const survivors = ctls.filter((c) => c !== initiator);

  // Writes through both survivors while the initiator dies.
  const during = startFio([{ uri: survivors[0].uri, offset: 96 * MiB, size: 24 * MiB }, { uri: survivors[1].uri, offset: 160 * MiB, size: 24 * MiB }],
    { writeRate: 3 * MiB, runtime: 60 });
  tt.teardown(() => during.kill());
  await waitFor('a partition to complete', async () => ((await taskOf(arr, 'rebuild'))!.counts.COMPLETE > 0 ? true : undefined), 30_000, 100);
  const mid = await taskOf(arr, 'rebuild');
  tt.equal(mid?.task.state, 'RUNNING', 'the rebuild is under way when its initiator is killed');
  await initiator.kill();

  const done = await waitTaskEnd(arr, 'rebuild', 90_000);
  tt.equal(done.task.state, 'DONE', `the rebuild completes (${done.task.reason ?? 'no reason'})`);
  const events = await taskEvents(arr, done.task.id);
  const adopted = events.filter((e) => e.kind === 'task.adopted');
  tt.ok(adopted.some((e) => survivors.some((c) => c.id === (e.detail as { to: number | null }).to)), 'a survivor adopted the task');
  const completing = events.filter((e) => e.kind === 'task.completing');
  tt.equal(completing.length, 1, 'the completion action ran once');
  tt.ok(survivors.some((c) => c.id === completing[0]?.controller), `by a survivor (controller ${completing[0]?.controller})`);

  const load = await during.result;
  tt.equal(load.failed, false, 'fio verify through the survivors passes');
  const status = await arr.json<{ slots: string; members: { path: string; slot: number | null; state: string }[] }>(['status', arr.name]);
  tt.equal(status.slots, 'UUUUU', 'the array is optimal');
  const again = await fioVerify([{ ...before, uri: survivors[1].uri }], { verifyOnly: true, runtime: 60 });
  tt.equal(again.failed, false, 'data written before the failure verifies after the rebuild');

  await arr.cli(['throttle', arr.name, '--min', '1000', '--max', '0']);
  const check = await scrub(arr, 'check');
  tt.equal(check.result?.mismatches, 0, 'check finds no parity mismatch');
  await Promise.all(survivors.map((c) => c.stop()));
  const { bad } = await compareRebuilt(arr, FAILED, MEMBER);
  tt.same(bad, [], 'the spare holds exactly the XOR of the others');
});
