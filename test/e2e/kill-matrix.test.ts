// The kill matrix: a controller SIGKILLed in the middle of a resync, a check, a repair and a lease
// hand-over, and SIGSTOPped past its heartbeat while it holds a partition and a lease. After each
// the array assembles from what is left, finishes or redoes what it must, `check` reports 0
// mismatches and every write acknowledged before the kill verifies. Background work is made slow
// with the throttle and its owner killed once the coordination object shows it holding a partition.
import t, { type Test } from 'tap';
import {
  MiB, fioVerify, flipBytes, leftSymmetric, memberLayout, scrub, startController, startFio, taskOf,
  waitFor, waitTaskEnd, type ControllerProcess, type EventJson, type TaskJson, type TestArray,
} from '../helpers/cluster.js';
import { safeTeardown } from '../../harness/cleanup.js';
import { withDeadline } from '../helpers/deadline.js';
import { sleep } from '../helpers/processes.js';
import { runTool } from '../../harness/run-tool.js';
import { MEMBERS, healthy, writtenArray } from '../helpers/kill-matrix.js';



/** Waits until `kind`'s newest task has a partition in progress; returns its owner and the task. */
const partitionHeld = (arr: TestArray, kind: string) => waitFor(`a ${kind} partition in progress`, async () => {
  const task = await taskOf(arr, kind);
  const p = task?.inProgress[0];
  return task && p ? { task, owner: p.owner, partition: p } : undefined;
}, 60_000, 50);

t.test('SIGKILL in the middle of a resync: the resync is redone, parity right, nothing lost', async (t) => {
  const { arr, written } = await writtenArray(t, false);
  const crashed = await startController(t, arr);
  const load = startFio([{ uri: crashed.uri, offset: 24 * MiB, size: 12 * MiB }], { writeRate: 2 * MiB, runtime: 60, allowFailure: true });
  t.teardown(() => load.kill());
  await waitFor('write intent on a region', async () => {
    const ev = await arr.json<EventJson[]>(['events', '--array', arr.name, '--limit', '100000']);
    return ev.some((e) => e.kind === 'lease.dirty' && e.controller === crashed.id) ? true : undefined;
  }, 30_000, 50);
  await crashed.kill();
  await load.kill();

  await arr.cli(['throttle', arr.name, '--min', '1', '--max', '1']);
  const resyncer = await startController(t, arr);
  const held = await partitionHeld(arr, 'resync');
  t.equal(held.owner, resyncer.id, 'the restarted controller resyncs');
  await resyncer.kill();
  const mid = await taskOf(arr, 'resync');
  t.not(mid?.task.state, 'DONE', 'killed before the resync finished');

  await arr.cli(['throttle', arr.name, '--min', '1000', '--max', '0']);
  const next = await startController(t, arr);
  const done = await waitTaskEnd(arr, 'resync', 60_000);
  t.equal(done.task.state, 'DONE', `the resync completes (${done.task.reason ?? 'no reason'})`);
  await healthy(t, arr, written, next);
});

t.test('SIGKILL in the middle of a repair: a survivor finishes it, the torn parity is fixed', async (t) => {
  const { arr, written } = await writtenArray(t, false);
  const geo = await memberLayout(arr, arr.members[0]);
  const stripes = [2, 25]; // one in each region: stripe 2 holds fio's data, 25 was never written
  for (const s of stripes) flipBytes(arr.members[leftSymmetric.parityDisk(s, MEMBERS)], geo.dataOffset, geo.chunk, [s]);
  const [a, b] = [await startController(t, arr), await startController(t, arr)];
  await arr.cli(['throttle', arr.name, '--min', '1', '--max', '1']);
  const repair = arr.cli(['repair', arr.name, '--json'], { allowFailure: true, timeoutMs: 120_000 });
  const held = await partitionHeld(arr, 'repair');
  const victim = [a, b].find((c) => c.id === held.owner);
  t.ok(victim, `a repair partition is held by controller ${held.owner}`);
  if (!victim) return;
  await victim.kill();
  t.not((await taskOf(arr, 'repair'))?.task.state, 'DONE', 'killed before the repair finished');
  await arr.cli(['throttle', arr.name, '--min', '1000', '--max', '0']);
  const done = await waitTaskEnd(arr, 'repair', 60_000);
  t.equal(done.task.state, 'DONE', `the repair completes (${done.task.reason ?? 'no reason'})`);
  await repair;
  // The victim's write intent makes a resync of its regions: a stripe the victim found but had
  // not recorded may be fixed by that resync before the repair looks again; it reports it then.
  const listed = (task: TaskJson | undefined) => ((task?.task.result as { list?: { stripe: number }[] } | null)?.list ?? []).map((m) => m.stripe);
  const resync = (await taskOf(arr, 'resync')) && await waitTaskEnd(arr, 'resync', 60_000);
  const fixed = [...new Set([...listed(done), ...listed(resync)])];
  t.same(fixed.filter((s) => stripes.includes(s)).sort((x, y) => x - y), stripes, `stripes ${stripes.join(', ')} found and repaired (repair: ${listed(done).join(', ')}; resync: ${listed(resync).join(', ') || 'none'})`);
  await healthy(t, arr, written, victim === a ? b : a);
});

t.test('SIGKILL in the middle of a check: a survivor finishes it, each mismatch counted once', async (t) => {
  const { arr, written } = await writtenArray(t, false);
  const geo = await memberLayout(arr, arr.members[0]);
  const stripes = [3, 20]; // one in each region
  for (const s of stripes) flipBytes(arr.members[leftSymmetric.parityDisk(s, MEMBERS)], geo.dataOffset, geo.chunk, [s]);
  const [a, b] = [await startController(t, arr), await startController(t, arr)];
  await arr.cli(['throttle', arr.name, '--min', '1', '--max', '1']);
  const check = arr.cli(['check', arr.name, '--json'], { allowFailure: true, timeoutMs: 120_000 });
  const held = await partitionHeld(arr, 'check');
  const victim = [a, b].find((c) => c.id === held.owner);
  t.ok(victim, `a check partition is held by controller ${held.owner}`);
  if (!victim) return;
  await victim.kill();
  t.not((await taskOf(arr, 'check'))?.task.state, 'DONE', 'killed before the check finished');
  await arr.cli(['throttle', arr.name, '--min', '1000', '--max', '0']);
  const done = await waitTaskEnd(arr, 'check', 60_000);
  t.equal(done.task.state, 'DONE', `the check completes (${done.task.reason ?? 'no reason'})`);
  await check;
  const found = done.task.result as { mismatches: number; list: { stripe: number }[] };
  t.same([found.mismatches, found.list.map((m) => m.stripe)], [stripes.length, stripes], 'exactly the torn stripes, each once');
  const repaired = await scrub(arr, 'repair');
  t.equal(repaired.result?.mismatches, stripes.length, 'repair rewrites them');
  await healthy(t, arr, written, victim === a ? b : a);
});

const nbdsh = (uri: string, code: string) => runTool('nbdsh', ['-u', uri, '-c', code], { allowFailure: true, timeoutMs: 60_000 });
const STRIPE_DATA = (MEMBERS - 1) * 512 * 1024;
/** Ten heartbeat and reaping periods of a controller (250 ms each). */
const PAST_HEARTBEAT_MS = 2500;

const eventsOf = (arr: TestArray) => arr.json<EventJson[]>(['events', '--array', arr.name, '--limit', '100000']);
const wantedFrom = (arr: TestArray, wanter: number, holder: number, region: number) => waitFor(`controller ${wanter} to want region ${region} of ${holder}`, async () => {
  const ev = (await eventsOf(arr)).find((e) => e.kind === 'lease.wanted' && e.controller === wanter
    && (e.detail as { region: number; holder: number }).region === region && (e.detail as { holder: number }).holder === holder);
  return ev;
}, 30_000, 50);

function stopped(t: Test, c: ControllerProcess): void {
  process.kill(c.pid, 'SIGSTOP');
  safeTeardown(t, `SIGCONT controller ${c.id}`, () => { try { process.kill(c.pid, 'SIGCONT'); } catch { /* gone */ } });
}

t.test('SIGSTOP past the heartbeat: nobody takes its partition or lease; SIGCONT and it goes on; SIGKILL during a hand-over', async (t) => {
  const { arr, written } = await writtenArray(t, false);
  const [a, b] = [await startController(t, arr), await startController(t, arr)];
  await arr.cli(['throttle', arr.name, '--min', '4', '--max', '4']); // a partition lasts seconds
  const check = arr.cli(['check', arr.name, '--json'], { allowFailure: true, timeoutMs: 120_000 });
  const held = await partitionHeld(arr, 'check');
  const x = [a, b].find((c) => c.id === held.owner);
  t.ok(x, `a check partition is held by controller ${held.owner}`);
  if (!x) return;
  const y = x === a ? b : a;
  const region = Math.floor(held.partition.stripeStart / 16);
  const at = held.partition.stripeStart * STRIPE_DATA + 14 * MiB; // in the same region, outside fio's data

  stopped(t, x);
  let acked = false;
  const write = nbdsh(y.uri, `h.pwrite(bytes([0x3c]) * 65536, ${at}, nbd.CMD_FLAG_FUA)`).then((r) => { acked = true; return r; });
  const wanted = await wantedFrom(arr, y.id, x.id, region);
  await sleep(PAST_HEARTBEAT_MS); // the stop must outlast the heartbeat: the passage of time is what is tested
  t.notOk(acked, `the write through ${y.id} waits for the lease of the stopped controller ${x.id}`);
  const later = (await eventsOf(arr)).filter((e) => e.id > wanted.id);
  t.same(later.filter((e) => e.kind === 'lease.granted' && e.controller === y.id), [], 'no lease granted to another while it is stopped');
  const task = await taskOf(arr, 'check');
  t.same(task?.inProgress.find((p) => p.idx === held.partition.idx)?.owner, x.id, 'its partition is still its own, in progress');
  const ctl = (await arr.json<{ id: number; alive: boolean; state: string }[]>(['controllers'])).find((c) => c.id === x.id);
  t.same([ctl?.state, ctl?.alive], ['live', true], 'and it counts as live: its flock is held');

  process.kill(x.pid, 'SIGCONT');
  const r = await withDeadline(write, 60_000, 'the write after SIGCONT');
  t.equal(r.code, 0, `once it continues the lease is handed over and the write acknowledged ${r.stderr}`);
  await arr.cli(['throttle', arr.name, '--min', '1000', '--max', '0']);
  const checked = JSON.parse((await check).stdout) as { state: string; result: { mismatches: number } };
  t.same([checked.state, checked.result.mismatches], ['DONE', 0], 'the check it held goes on and completes with 0 mismatches');

  // Now y holds the region. Stop it, have x want the region, and kill y in the middle of the hand-over.
  stopped(t, y);
  const back = nbdsh(x.uri, `h.pwrite(bytes([0xc3]) * 4096, ${at + 65536}, nbd.CMD_FLAG_FUA)`);
  await wantedFrom(arr, x.id, y.id, region);
  await y.kill();
  const r2 = await withDeadline(back, 60_000, 'the write once the holder is dead');
  t.equal(r2.code, 0, `the holder dead (its flock free), the write is acknowledged ${r2.stderr}`);
  const got = await nbdsh(x.uri, `import sys; sys.stdout.write(h.pread(${65536 + 4096}, ${at}).hex())`);
  t.equal(got.stdout, '3c'.repeat(65536) + 'c3'.repeat(4096), 'both acknowledged writes read back');
  const resync = await taskOf(arr, 'resync');
  if (resync) t.equal((await waitTaskEnd(arr, 'resync', 60_000)).task.state, 'DONE', 'the dead holder\'s dirty region is resynced');
  const again = await fioVerify([{ ...written, uri: x.uri }], { verifyOnly: true, runtime: 60 });
  t.equal(again.failed, false, 'every fio write from before verifies');
});
