// An array whose members are exports of other NBD servers: `nbdraid serve --file` and nbdkit's file
// plugin, over loopback TCP and unix sockets. Created, served and verified through a controller
// with fio; a member failed by request is rebuilt onto a remote spare and check finds no mismatch;
// the members alone assemble again in a fresh state directory;
// a member server SIGKILLed under load fails its member cleanly and the array stays served
// degraded with every acknowledged write intact; once the server is back, the same export added
// as a spare is rebuilt.
import path from 'node:path';
import t from 'tap';
import {
  MiB, createArray, fioVerify, scrub, startController, startFio, waitFor, waitTaskEnd,
} from '../helpers/cluster.js';
import { type MemberServerSpec, serveMembers } from '../helpers/member-servers.js';
import { sleep } from '../helpers/processes.js';
import { killGroup, runTool } from '../../harness/run-tool.js';
import { nbdraidCli, startNbdraid } from '../../harness/server-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 96 * MiB;
const JOB = 24 * MiB;
const MIX: MemberServerSpec[] = [
  { server: 'nbdraid', via: 'tcp' }, { server: 'nbdraid', via: 'unix' }, { server: 'nbdkit', via: 'tcp' },
  { server: 'nbdkit', via: 'unix' }, { server: 'nbdraid', via: 'tcp' },
];

interface Status { slots: string; state: string; members: { path: string; slot: number | null; state: string }[] }

t.test('remote members: create, serve, fio verify, fail one, rebuild onto a remote spare, check 0', async (tt) => {
  const dir = tempDir(tt);
  const servers = await serveMembers(tt, dir, MEMBER, [...MIX.map((m, i) => ({ ...m, name: `m${i}` })), { server: 'nbdkit', via: 'unix', name: 'spare' }]);
  const spare = servers.pop()!;
  const arr = await createArray(dir, { memberSize: MEMBER, at: { members: servers.map((s) => s.uri), spare: spare.uri } });
  tt.same((await arr.json<Status>(['status', arr.name])).members.map((m) => m.path), [...servers.map((s) => s.uri), spare.uri],
    'the registry records every member by its URI');
  const md = await runTool('mdadm', ['--examine', servers[3].file]);
  tt.match(md.stdout, /Raid Level : raid5[\s\S]*Device Role : Active device 3/, 'mdadm --examine recognises a member written over NBD');

  const ctl = await startController(tt, arr);
  const ranges = [{ uri: ctl.uri, offset: 0, size: JOB }, { uri: ctl.uri, offset: 200 * MiB, size: JOB }];
  const first = await fioVerify(ranges, { runtime: 90 });
  tt.same(first.jobs.map((j) => j.read.io_bytes), [JOB, JOB], 'fio wrote and verified both ranges through remote members');

  await arr.cli(['fail', arr.name, '--member', '2']);
  const rebuilt = await waitTaskEnd(arr, 'rebuild', 120_000);
  tt.equal(rebuilt.task.state, 'DONE', `the rebuild onto the remote spare completes (${rebuilt.task.reason ?? 'no reason'})`);
  const status = await arr.json<Status>(['status', arr.name]);
  tt.equal(status.slots, 'UUUUU', 'the array is optimal again');
  tt.same(status.members.find((m) => m.path === spare.uri)?.slot, 2, 'the spare holds slot 2');

  const again = await fioVerify(ranges, { verifyOnly: true, runtime: 60 });
  tt.same(again.jobs.map((j) => j.read.io_bytes), [JOB, JOB], 'fio verify-only after the rebuild reads back every block');
  const check = await scrub(arr, 'check');
  tt.equal(check.state, 'DONE', 'check completes');
  tt.equal(check.result?.mismatches, 0, 'check finds no parity mismatch');

  const current = servers.map((s, i) => (i === 2 ? spare.uri : s.uri));
  const sbs = await arr.json<{ events: number; arrayState: string }[]>(['examine', ...current]);
  tt.equal(new Set(sbs.map((s) => s.events)).size, 1, `every remote member's superblock has the same events (${sbs[0]?.events})`);
  tt.same(sbs.map((s) => s.arrayState), Array(5).fill('AAAAA'), 'every superblock shows all five slots active');

  // The members alone tell the truth: a fresh state directory assembles the array from the URIs.
  await ctl.stop();
  const fresh = ['--state', path.join(dir, 'state2')];
  await runTool(process.execPath, [nbdraidCli, ...fresh, 'assemble', 'again', ...current]);
  const assembled = JSON.parse((await runTool(process.execPath, [nbdraidCli, ...fresh, 'status', 'again', '--json'])).stdout) as Status;
  tt.same({ slots: assembled.slots, paths: assembled.members.map((m) => m.path) }, { slots: 'UUUUU', paths: current },
    'assemble from the remote members alone records the optimal array under their URIs');
});

t.test('remote members: a member server SIGKILLed mid-I/O fails its member; served degraded, nothing acknowledged lost', async (tt) => {
  const dir = tempDir(tt);
  const servers = await serveMembers(tt, dir, MEMBER, MIX.map((m, i) => ({ ...m, name: `m${i}` })));
  const arr = await createArray(dir, { memberSize: MEMBER, at: { members: servers.map((s) => s.uri) } });
  const ctl = await startController(tt, arr, [], []);
  const ranges = [{ uri: ctl.uri, offset: 0, size: JOB }, { uri: ctl.uri, offset: 150 * MiB, size: JOB }];
  const fio = startFio(ranges, { writeRate: 4 * MiB, runtime: 90 });
  tt.teardown(() => fio.kill());
  await sleep(1500);
  tt.notOk(fio.exited(), 'fio is still writing when the member server dies');
  const victim = servers[1]; // nbdraid serve --file on a unix socket
  killGroup(victim.process.pid, 'SIGKILL');

  const failed = await waitFor('the controller to fail the member', async () => /member 1 \(.*\) marked faulty: (.*)/.exec(ctl.stderr()) ?? undefined, 60_000);
  tt.comment(`controller: ${failed[0]}`);
  const run = await fio.result;
  tt.equal(run.failed, false, 'fio verify across the member server\'s death passes (every acknowledged write reads back)');
  tt.same(run.jobs.map((j) => j.write.io_bytes), [JOB, JOB], 'fio wrote both ranges whole');
  const status = await arr.json<Status>(['status', arr.name]);
  tt.same({ slots: status.slots, state: status.state }, { slots: 'U_UUU', state: 'degraded' }, 'the array runs degraded without slot 1');

  const after = await fioVerify(ranges, { verifyOnly: true, runtime: 60 });
  tt.same(after.jobs.map((j) => j.read.io_bytes), [JOB, JOB], 'the degraded array still serves every block (verify-only)');
  const info = await runTool('nbdinfo', ['--size', ctl.uri]);
  tt.ok(Number(info.stdout.trim()) > 0, 'the controller still answers new clients');

  // The export back: its server restarted, the failed member dropped and the same URI added as a spare.
  const back = await startNbdraid(tt, { file: victim.file, exportName: 'm1', socket: victim.process.socket });
  tt.equal(back.uri(), victim.uri, 'the member server is back at the same URI');
  await arr.cli(['remove', arr.name, '--member', '1']);
  await arr.cli(['add-spare', arr.name, victim.uri]);
  const rebuilt = await waitTaskEnd(arr, 'rebuild', 120_000);
  tt.equal(rebuilt.task.state, 'DONE', `the export is rebuilt (${rebuilt.task.reason ?? 'no reason'})`);
  tt.equal((await arr.json<Status>(['status', arr.name])).slots, 'UUUUU', 'the array is optimal again');
  const verified = await fioVerify(ranges, { verifyOnly: true, runtime: 60 });
  tt.same(verified.jobs.map((j) => j.read.io_bytes), [JOB, JOB], 'every block verifies after the rebuild');
  const check = await scrub(arr, 'check');
  tt.equal(check.result?.mismatches, 0, `check finds no parity mismatch (${check.state})`);
});
