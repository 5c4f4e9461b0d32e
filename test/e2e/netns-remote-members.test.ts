// Hosts as network namespaces: members served from storage hosts, a controller on its own host
// serving a client on a third. One storage host is cut off the network while the client writes:
// its member's requests go unanswered, the controller fails the member after the member timeout
// and runs degraded, the rebuild onto a spare served from another storage host completes,
// everything the client wrote verifies, and check finds no mismatch.
import t from 'tap';
import { MiB, createArray, fioVerify, scrub, startController, startFio, waitFor, waitTaskEnd } from '../helpers/cluster.js';
import { serveMemberIn } from '../helpers/member-servers.js';
import { canMakeNetworks, createNetwork } from '../helpers/netns.js';
import { sleep } from '../helpers/processes.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 96 * MiB;
const JOB = 24 * MiB;
const MEMBER_TIMEOUT_S = 3;

interface Status { slots: string; state: string; members: { path: string; slot: number | null; state: string }[] }

t.test('a storage host cut off: member failed by timeout, array served degraded, rebuild onto a spare elsewhere, check 0', { skip: !canMakeNetworks() && 'needs root and ip netns' }, async (tt) => {
  // Every nbdraid process of this test (CLI and controller) inherits the member timeout.
  process.env.NBDRAID_MEMBER_TIMEOUT = String(MEMBER_TIMEOUT_S);
  tt.teardown(() => { delete process.env.NBDRAID_MEMBER_TIMEOUT; });
  const dir = tempDir(tt);
  const net = await createNetwork(tt, 'rm');
  const storA = await net.addHost('stora');
  const storB = await net.addHost('storb');
  const storC = await net.addHost('storc');
  const ctlHost = await net.addHost('ctl');
  const client = await net.addHost('client');

  const onA = await Promise.all([0, 1, 2, 3].map((i) => serveMemberIn(tt, storA, dir, `m${i}`, MEMBER, 10809 + i)));
  const onB = await serveMemberIn(tt, storB, dir, 'm4', MEMBER);
  const spare = await serveMemberIn(tt, storC, dir, 'spare', MEMBER);
  const members = [...onA, onB].map((s) => s.uri);
  const arr = await createArray(dir, { memberSize: MEMBER, at: { members, spare: spare.uri }, runIn: ctlHost.exec });
  const ctl = await startController(tt, arr, [], ctlHost.exec, ctlHost.address);
  tt.comment(`members on ${storA.address} and ${storB.address}, spare on ${storC.address}, controller ${ctl.uri}, client on ${client.address}`);

  const ranges = [{ uri: ctl.uri, offset: 0, size: JOB }, { uri: ctl.uri, offset: 200 * MiB, size: JOB }];
  const fio = startFio(ranges, { writeRate: 4 * MiB, runtime: 120, runIn: client.exec });
  tt.teardown(() => fio.kill());
  await sleep(1500);
  tt.notOk(fio.exited(), 'the client is still writing when the storage host is cut off');
  await net.cut('storb');
  const cutAt = Date.now();

  const failed = await waitFor('the controller to fail member 4', async () => /member 4 \(.*\) marked faulty: (.*)/.exec(ctl.stderr()) ?? undefined, 60_000);
  tt.comment(`after ${Date.now() - cutAt} ms: ${failed[0]}`);
  const run = await fio.result;
  tt.equal(run.failed, false, 'the client\'s fio verify across the cut passes: every acknowledged write reads back');
  tt.same(run.jobs.map((j) => j.write.io_bytes), [JOB, JOB], 'the client wrote both ranges whole');

  const rebuilt = await waitTaskEnd(arr, 'rebuild', 180_000);
  tt.equal(rebuilt.task.state, 'DONE', `the rebuild onto the spare on ${storC.ns} completes (${rebuilt.task.reason ?? 'no reason'})`);
  const status = await arr.json<Status>(['status', arr.name]);
  tt.equal(status.slots, 'UUUUU', 'the array is optimal again');
  tt.equal(status.members.find((m) => m.path === spare.uri)?.slot, 4, 'the spare holds slot 4');

  const again = await fioVerify(ranges, { verifyOnly: true, runtime: 60, runIn: client.exec });
  tt.same(again.jobs.map((j) => j.read.io_bytes), [JOB, JOB], 'the client verifies every block after the rebuild');
  const check = await scrub(arr, 'check');
  tt.equal(check.state, 'DONE', 'check completes');
  tt.equal(check.result?.mismatches, 0, 'check finds no parity mismatch');
});
