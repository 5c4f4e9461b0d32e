// Several hosts on one machine, as network namespaces: PostgreSQL on a database host, members
// served from storage hosts, a controller on each of two hosts, clients on a fifth. In order:
// fio verify through both controllers at once; controller A cut off from PostgreSQL while a client
// writes through it (its member I/O stops, it gives up at T, B takes over, every block A
// acknowledged reads back through B, check 0); A restarted; a storage host cut off (its member
// fails by timeout, the array runs degraded, the rebuild onto a spare on a third storage host
// completes, check 0).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runTool } from '../../harness/run-tool.js';
import { spawnServer } from '../../harness/spawn-ready.js';
import { MiB, createArray, fioVerify, scrub, startController, waitFor, waitTaskEnd } from '../helpers/cluster.js';
import { serveMemberIn } from '../helpers/member-servers.js';
import { type Host, canMakeNetworks, createNetwork } from '../helpers/netns.js';
import { startPostgres } from '../helpers/postgres.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 64 * MiB;
const JOB = 16 * MiB;
const T_S = 8; // T/2 stays above the member timeout, as serve requires with remote members
const MEMBER_TIMEOUT_S = 3;
const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'workers', 'acked-writer.js');
const BLOCK = 64 * 1024;

interface Status { slots: string; members: { path: string; slot: number | null; state: string }[] }

/** The acked-writer worker inside `host`: write (or, with verify, read back) blocks through `uri`. */
function ackedClient(host: Host, uri: string, offset: number, count: number, seed: number, verify = false) {
  const [cmd, ...pre] = host.exec;
  const s = spawnServer(cmd, [...pre, process.execPath, WRITER, uri, String(offset), String(BLOCK), String(count), String(seed), '60'], verify ? { VERIFY: '1' } : {});
  const acked = () => [...s.stderr().matchAll(/^ack (\d+)$/gm)].map((m) => Number(m[1]));
  return { s, acked, out: () => s.stderr() };
}

/** Lines of a controller's log with an event name, with the time each was seen by the test. */
function logTimes(stderr: () => string, pattern: RegExp): RegExpExecArray | null {
  return pattern.exec(stderr());
}

t.test('controllers on two hosts coordinated through PostgreSQL: fio on both, one cut off from the database, a storage host cut off', { skip: !canMakeNetworks() && 'needs root and ip netns' }, async (tt) => {
  const dir = tempDir(tt);
  const net = await createNetwork(tt, 'pg');
  const dbHost = await net.addHost('db');
  const storA = await net.addHost('stora');
  const storB = await net.addHost('storb');
  const storC = await net.addHost('storc');
  const hostA = await net.addHost('hosta');
  const hostB = await net.addHost('hostb');
  const client = await net.addHost('client');

  const pg = await startPostgres(tt, { listen: dbHost.address, runIn: dbHost.exec });
  await pg.psql('CREATE DATABASE nbdraid');
  const uri = `postgresql://${pg.user}@${dbHost.address}:${pg.port}/nbdraid`;
  // Every nbdraid process of this test (the CLI and the controllers) inherits these.
  const env = { NBDRAID_COORDINATION: uri, NBDRAID_DEAD_AFTER: String(T_S), NBDRAID_MEMBER_TIMEOUT: String(MEMBER_TIMEOUT_S) };
  Object.assign(process.env, env);
  tt.teardown(() => { for (const k of Object.keys(env)) delete process.env[k]; });

  const onA = await Promise.all([0, 1, 2, 3].map((i) => serveMemberIn(tt, storA, dir, `m${i}`, MEMBER, 10809 + i)));
  const onB = await serveMemberIn(tt, storB, dir, 'm4', MEMBER);
  const spare = await serveMemberIn(tt, storC, dir, 'spare', MEMBER);
  const arr = await createArray(dir, { memberSize: MEMBER, at: { members: [...onA, onB].map((s) => s.uri), spare: spare.uri }, runIn: hostB.exec });
  const a = await startController(tt, arr, [], hostA.exec, hostA.address);
  const b = await startController(tt, arr, [], hostB.exec, hostB.address);
  tt.comment(`PostgreSQL ${dbHost.address}:${pg.port}; controllers ${a.uri} (id ${a.id}) and ${b.uri} (id ${b.id})`);
  const state = path.join(dir, 'state');
  tt.notOk((await runTool('ls', [state], { allowFailure: true })).stdout.includes('nbdraid.db'), 'no SQLite database is made when PostgreSQL is the coordination object');

  // 1. fio verify through both controllers at once, on interleaved ranges.
  const both = await fioVerify([{ uri: a.uri, offset: 0, size: JOB }, { uri: b.uri, offset: 32 * MiB, size: JOB }], { runtime: 90, runIn: client.exec });
  tt.equal(both.failed, false, 'fio verify through controllers on two hosts passes');
  const live = await arr.json<{ id: number; alive: boolean }[]>(['controllers']);
  tt.same(live.filter((c) => c.alive).map((c) => c.id).sort(), [a.id, b.id].sort(), 'both controllers are live on PostgreSQL');

  // 2. A cut off from the database (a blackhole route to it inside A's namespace only: A still
  // reaches its members and its client) while a client writes through it, and one through B.
  const base = 40 * MiB;
  const wA = ackedClient(client, a.uri, base, 2000, 1000);
  const wB = ackedClient(client, b.uri, base + 2000 * BLOCK, 300, 5000);
  await waitFor('writes acknowledged through A', async () => (wA.acked().length >= 20 ? true : undefined), 30_000);
  await runTool('ip', ['-n', hostA.ns, 'route', 'add', 'blackhole', `${dbHost.address}/32`]);
  const cutAt = Date.now();
  const ackedAtCut = wA.acked().length;
  const fenced = await waitFor('A to hold its member I/O', async () => logTimes(a.stderr, /controller \d+ holds all member I\/O: (.*)/) ?? undefined, 30_000);
  const fencedAfter = Date.now() - cutAt;
  const lost = await waitFor('A to stop for good', async () => logTimes(a.stderr, /controller \d+ stopped all member I\/O for good: (.*)/) ?? undefined, 30_000);
  const lostAfter = Date.now() - cutAt;
  const exit = await a.exited;
  tt.equal(exit.code, 1, 'A exits with status 1 once it lost its life on the database');
  const ackedByA = wA.acked();
  tt.comment(`A: ${ackedAtCut} blocks acknowledged at the cut, ${ackedByA.length} in all; held after ${fencedAfter} ms (${fenced[1]}); gave up after ${lostAfter} ms (${lost[1]})`);
  await wA.s.exit;
  tt.match(wA.out(), /error /, 'A\'s client saw its connection end');
  await wB.s.exit;
  tt.match(wB.out(), /done/, 'B served its client through the cut');
  tt.equal(wB.acked().length, 300, 'every write through B was acknowledged');

  const readBack = ackedClient(client, b.uri, base, ackedByA.length, 1000, true);
  await readBack.s.exit;
  tt.match(readBack.out(), new RegExp(`verified ${ackedByA.length}`), 'the read-back of A\'s blocks through B ran');
  tt.notMatch(readBack.out(), /bad \d+/, `every block A acknowledged (${ackedByA.length}) reads back through B`);
  const readB = ackedClient(client, b.uri, base + 2000 * BLOCK, 300, 5000, true);
  await readB.s.exit;
  tt.notMatch(readB.out(), /bad \d+/, 'every block B acknowledged reads back');
  await runTool('ip', ['-n', hostA.ns, 'route', 'del', 'blackhole', `${dbHost.address}/32`]);
  const afterCut = await scrub(arr, 'check');
  tt.equal(afterCut.result?.mismatches, 0, 'check after the take-over finds no parity mismatch');

  // 3. A back, as a new controller; then storage host B cut off.
  const a2 = await startController(tt, arr, [], hostA.exec, hostA.address);
  tt.not(a2.id, a.id, `A rejoins as a new controller (${a2.id})`);
  const fio = fioVerify([{ uri: a2.uri, offset: 0, size: JOB }, { uri: b.uri, offset: 32 * MiB, size: JOB }], { runtime: 90, writeRate: 2 * MiB, runIn: client.exec });
  await new Promise((r) => setTimeout(r, 1500));
  await net.cut('storb');
  const failed = await waitFor('member 4 to fail', async () => /member 4 \(.*\) marked faulty: (.*)/.exec(a2.stderr() + b.stderr()) ?? undefined, 60_000);
  tt.comment(`storage host cut off: ${failed[0]}`);
  tt.equal((await fio).failed, false, 'fio verify through both controllers passes across the storage host\'s cut');
  const rebuilt = await waitTaskEnd(arr, 'rebuild', 180_000);
  tt.equal(rebuilt.task.state, 'DONE', `the rebuild onto the spare on ${storC.ns} completes`);
  const status = await arr.json<Status>(['status', arr.name]);
  tt.equal(status.slots, 'UUUUU', 'the array is optimal again');
  tt.equal(status.members.find((m) => m.path === spare.uri)?.slot, 4, 'the spare holds slot 4');
  const check = await scrub(arr, 'check');
  tt.equal(check.result?.mismatches, 0, 'check after the rebuild finds no parity mismatch');
});
