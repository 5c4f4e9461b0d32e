// A rebuild shared by three controller processes, under client load, surviving the death of one
// of them: fio writes and verifies crc32c-tagged data through two controllers at once while a
// member is failed, the spare is rebuilt by all three, and one controller is SIGKILLed in the
// middle of a partition. Its partition is finished by another; afterwards fio verify passes,
// `nbdraid check` finds no mismatch, and the spare holds exactly the XOR of the survivors' data
// areas (what slot 2 must hold), compared byte for byte with the cluster stopped.
import t from 'tap';
import {
  MiB, compareRebuilt, createArray, fioVerify, scrub, startController, startFio, taskEvents, taskOf, waitFor, waitTaskEnd,
  type FioRange,
} from '../helpers/cluster.js';
import { sleep } from '../helpers/processes.js';
import { runTool } from '../../harness/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 128 * MiB;
const JOB = 40 * MiB;
const FAILED = 2;

t.test('fio verify through 2 controllers while 3 rebuild a spare and one is SIGKILLed', async (tt) => {
  const arr = await createArray(tempDir(tt), { memberSize: MEMBER, spare: true });
  // Slow background work so the rebuild spans the client load and the kill.
  // At 10 MB/s the 128 MiB rebuild lasts ~13 s: its first partitions finish while fio still writes,
  // and a loaded machine's slow CLI polls still see its recovery offset mid-rebuild.
  await arr.cli(['throttle', arr.name, '--min', '10', '--max', '10']);
  const [c0, c1, c2] = await Promise.all([0, 1, 2].map(() => startController(tt, arr)));

  const ranges: FioRange[] = [{ uri: c0.uri, offset: 0, size: JOB }, { uri: c1.uri, offset: 256 * MiB, size: JOB }];
  const fio = startFio(ranges, { writeRate: 4 * MiB, runtime: 90 });
  tt.teardown(() => fio.kill());
  await sleep(1000);

  await arr.cli(['fail', arr.name, '--member', String(FAILED)]);
  // Mid-rebuild: some partitions complete, and the victim works on one of its own.
  const seen = await waitFor('c2 to work on a rebuild partition', async () => {
    const task = await taskOf(arr, 'rebuild');
    const mine = task?.inProgress.filter((p) => p.owner === c2.id) ?? [];
    return task && task.counts.COMPLETE > 0 && mine.length > 0 ? { task, mine } : undefined;
  }, 60_000, 100);
  tt.notOk(fio.exited(), 'fio is still writing when the controller is killed');
  await c2.kill();
  const seenParts = seen.mine.map((p) => p.idx);
  tt.comment(`killed controller ${c2.id}, seen holding partition(s) ${seenParts.join(', ')} of task ${seen.task.task.id}`);

  // md's recovery_offset: the rebuilt prefix reaches the spare's superblock while the rebuild runs.
  // The task's state is read before the superblock: RUNNING then, the offset read after it was
  // written before the rebuild ended.
  const recovery = await waitFor('the spare\'s recovery offset to advance', async () => {
    const task = await taskOf(arr, 'rebuild');
    const [sb] = await arr.json<{ recoveryOffset: number | null }[]>(['examine', arr.spare!]);
    const running = task?.task.state === 'RUNNING';
    if (sb.recoveryOffset && sb.recoveryOffset > 0) return { offset: sb.recoveryOffset, running };
    return running ? undefined : { offset: 0, running: false };
  }, 60_000, 200);
  tt.ok(recovery.offset > 0 && recovery.running, `recovery_offset ${recovery.offset} sectors recorded mid-rebuild`);

  const done = await waitTaskEnd(arr, 'rebuild', 120_000);
  tt.equal(done.task.state, 'DONE', `the rebuild task completes (${done.task.reason ?? 'no reason'})`);
  tt.equal(done.counts.COMPLETE, done.task.partitionsTotal, 'every partition is complete');

  const run = await fio.result;
  tt.equal(run.failed, false, 'fio verify during the failure, rebuild and kill passes');
  for (const j of run.jobs) {
    tt.equal(j.write.io_bytes, JOB, `${j.jobname} wrote its whole range`);
    tt.equal(j.read.io_bytes, JOB, `${j.jobname} read back and verified its whole range`);
  }

  const events = await taskEvents(arr, done.task.id);
  const claimedBy = new Set(events.filter((e) => e.kind === 'partition.claimed').map((e) => e.controller));
  tt.ok(claimedBy.size >= 2, `partitions were claimed by ${claimedBy.size} controllers (${[...claimedBy].join(', ')})`);
  tt.ok(claimedBy.has(c2.id), 'the killed controller had claimed partitions');
  // Between the look and the kill the victim may have finished a partition it was seen holding.
  const victimParts = seenParts.filter((idx) => !events.some((e) => e.kind === 'partition.completed' && e.partitionIdx === idx && e.controller === c2.id));
  tt.ok(victimParts.length > 0, `the killed controller still held partition(s) ${victimParts.join(', ')} when it died`);
  for (const idx of victimParts) {
    const released = events.find((e) => e.kind === 'partition.released' && e.partitionIdx === idx
      && (e.detail as { from?: number } | null)?.from === c2.id);
    tt.ok(released, `partition ${idx} of the killed controller went back to READY`);
    const completed = events.filter((e) => e.kind === 'partition.completed' && e.partitionIdx === idx);
    tt.equal(completed.length, 1, `partition ${idx} was completed once`);
    tt.ok(completed[0] && completed[0].controller !== c2.id && [c0.id, c1.id].includes(completed[0].controller as number),
      `partition ${idx} was completed by a surviving controller (${completed[0]?.controller})`);
  }

  const status = await arr.json<{ slots: string; state: string; members: { path: string; slot: number | null; state: string }[] }>(['status', arr.name]);
  tt.equal(status.slots, 'UUUUU', 'the array is optimal again');
  const spare = status.members.find((m) => m.path === arr.spare);
  tt.same({ slot: spare?.slot, state: spare?.state }, { slot: FAILED, state: 'active' }, 'the spare is active in the failed slot');

  // Verify again, each range through the other controller.
  const again = await fioVerify([{ ...ranges[0], uri: c1.uri }, { ...ranges[1], uri: c0.uri }], { verifyOnly: true, runtime: 60 });
  tt.equal(again.failed, false, 'fio verify-only after the rebuild passes');
  tt.same(again.jobs.map((j) => j.read.io_bytes), [JOB, JOB], 'everything was verified');

  await arr.cli(['throttle', arr.name, '--min', '1000', '--max', '0']);
  const check = await scrub(arr, 'check');
  tt.equal(check.state, 'DONE', 'check completes');
  tt.equal(check.result?.mismatches, 0, 'check finds no parity mismatch');

  await c0.stop();
  await c1.stop();
  const current = arr.members.map((m, i) => (i === FAILED ? arr.spare! : m));
  const sbs = await arr.json<{ events: number; deviceRole: string; recoveryOffset: number | null; arrayState: string }[]>(['examine', ...current]);
  tt.same(new Set(sbs.map((sb) => sb.events)).size, 1, `every member's superblock carries the same events count (${sbs[0].events})`);
  tt.same({ role: sbs[FAILED].deviceRole, recovery: sbs[FAILED].recoveryOffset }, { role: `Active device ${FAILED}`, recovery: null },
    'the spare\'s superblock says it is in sync in the failed slot');
  tt.same(sbs.map((sb) => sb.arrayState), Array(5).fill('AAAAA'), 'every superblock shows all five slots active');
  const md = await runTool('mdadm', ['--examine', arr.spare!]);
  tt.match(md.stdout, /Device Role : Active device 2[\s\S]*Array State : AAAAA/, 'mdadm --examine agrees');
  const { bad, oldMemberEqual } = await compareRebuilt(arr, FAILED, MEMBER);
  tt.same(bad, [], 'the spare holds exactly the XOR of the survivors (what slot 2 must hold)');
  tt.notOk(oldMemberEqual, 'the failed member missed writes made after it failed (so the comparison bites)');
});
