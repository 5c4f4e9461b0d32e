// PostgreSQL restarted in the middle of a rebuild shared by two controllers: they wait for it
// (leases, checkpoints and heartbeats are tried again; nothing fails for the outage), resume, and
// the rebuild completes with every written byte intact, read through either controller.
import path from 'node:path';
import t, { type Test } from 'tap';
import { Controller } from '../../lib/controller/controller.js';
import { PgBackend } from '../../lib/coordination/pg/index.js';
import type { CoordinationTarget } from '../../lib/coordination/target.js';
import type { LogEntry } from '../../lib/log.js';
import { NbdClient } from '../../lib/transport/client.js';
import { safeTeardown } from '../../harness/cleanup.js';
import { createArray } from '../../harness/raid-array.js';
import { waitUntil, withDeadline } from '../helpers/deadline.js';
import { moveToPostgres } from '../helpers/pg-array.js';
import { startPostgres } from '../helpers/postgres.js';
import { seededBytes } from '../helpers/prng.js';
import { tempDir } from '../helpers/temp-dir.js';

const T = 8000;

/** A PostgreSQL server of the test's own, and an array of 4 members `size` each recorded in its database `db`. */
async function arrayOnPostgres(t: Test, db: string, name: string, size: string) {
  const server = await startPostgres(t);
  await server.psql(`CREATE DATABASE ${db}`);
  const uri = server.uri(db);
  const dir = tempDir(t, `nbdraid-${db}-`);
  const arr = await createArray({ dir, name, members: 4, memberSize: size, chunk: '64K' });
  const backend = await PgBackend.open(uri, { deadAfterMs: T });
  t.teardown(() => backend.close());
  return { server, uri, dir, arr, backend, target: { kind: 'postgres', uri, deadAfterMs: T } as CoordinationTarget };
}

t.test('PostgreSQL restarted mid-rebuild: both controllers wait and resume, the rebuild completes', async (t) => {
  const { server, dir, arr, backend, target } = await arrayOnPostgres(t, 'restart', 'pr', '64M');
  await arr.cli('add-spare', 'pr', path.join(dir, 'spare'), '--size', '64M');
  await arr.cli('throttle', 'pr', '--min', '8', '--max', '16'); // slow enough to restart the server in the middle
  await moveToPostgres(arr, backend);

  const lines: LogEntry[] = [];
  const start = async (n: string) => {
    const sock = path.join(dir, `${n}.sock`);
    const ctl = await Controller.start({ stateDir: arr.state, arrayName: 'pr', listen: { path: sock }, coordination: target, log: (e) => { lines.push(e); } });
    safeTeardown(t, `controller ${n} stop`, () => ctl.stop());
    const client = await NbdClient.connect({ path: sock, exportName: 'pr' });
    safeTeardown(t, `client ${n} close`, () => client.close());
    return { ctl, client };
  };
  const a = await start('a');
  const b = await start('b');

  // 8 MiB spread over the volume, through both controllers.
  const size = a.ctl.volume.size;
  const blocks = Array.from({ length: 16 }, (_, i) => ({ at: Math.floor((i * size) / 16 / 65536) * 65536, data: seededBytes(512 * 1024, 10 + i) }));
  for (const [i, blk] of blocks.entries()) await (i % 2 ? b : a).client.write(blk.at, blk.data);
  await a.client.flush();
  await b.client.flush();

  const ops = backend.ops((await backend.register()).id);
  await a.ctl.volume.failMember(1, 'failed by the test');
  const rebuild = await waitUntil(async () => (await ops.tasks('pr', true)).find((x) => x.kind === 'rebuild'), 30_000, 'a rebuild task', 100);
  await waitUntil(async () => (await ops.partitions(rebuild.id)).some((p) => p.state === 'COMPLETE' || (p.checkpoint as { next?: number } | null)?.next), 60_000, 'rebuild progress', 100);

  // The server goes away for a second and comes back, mid-rebuild.
  const before = (await ops.tasks('pr', false)).find((k) => k.id === rebuild.id);
  t.equal(before?.state, 'RUNNING', 'the rebuild runs when the server is stopped');
  await server.restart(1000);
  // The other controller, and client I/O through both, carry on.
  for (const [i, blk] of blocks.entries()) {
    t.same(await withDeadline((i % 2 ? a : b).client.read(blk.at, blk.data.length), 30_000, `read ${i} after the restart`), blk.data, `block ${i} reads back after the restart`);
  }
  const done = await waitUntil(async () => {
    const x = (await ops.tasks('pr', false)).find((k) => k.id === rebuild.id);
    return x && (x.state === 'DONE' || x.state === 'FAILED' || x.state === 'CANCELLED') ? x : undefined;
  }, 180_000, 'the rebuild to end', 250);
  t.equal(done.state, 'DONE', `the rebuild completed (${done.reason ?? 'no failure'})`);
  t.equal(a.ctl.fence.state, 'open', 'controller a serves');
  t.equal(b.ctl.fence.state, 'open', 'controller b serves');
  t.notOk(lines.some((l) => l.event === 'controller.lost'), 'no controller gave up over a short outage');
  const partitionFailures = lines.filter((l) => l.event === 'partition.failed').map((l) => l.message);
  t.same(partitionFailures, [], 'no partition failed for the outage');
  const rec = await ops.arrayGet('pr');
  const activeSlots = rec!.members.filter((m) => m.state === 'active').map((m) => m.slot).sort();
  t.same(activeSlots, [0, 1, 2, 3], 'every slot has an active member again');
  for (const [i, blk] of blocks.entries()) t.same(await (i % 2 ? b : a).client.read(blk.at, blk.data.length), blk.data, `block ${i} reads back after the rebuild`);
});

t.test('a member change and a first write while PostgreSQL is away wait for it; the volume stays online', async (t) => {
  const { server, dir, arr, backend, target } = await arrayOnPostgres(t, 'away', 'aw', '16M');
  await moveToPostgres(arr, backend);
  const lines: LogEntry[] = [];
  const sock = path.join(dir, 'a.sock');
  const ctl = await Controller.start({ stateDir: arr.state, arrayName: 'aw', listen: { path: sock }, coordination: target, log: (e) => { lines.push(e); } });
  safeTeardown(t, 'controller stop', () => ctl.stop());
  const client = await NbdClient.connect({ path: sock, exportName: 'aw' });
  safeTeardown(t, 'client close', () => client.close());
  const first = seededBytes(256 * 1024, 1);
  await client.write(0, first);
  await client.flush();

  await server.down();
  // Both need the database: the failure is a change of the record, then superblocks written from
  // it; a write far from the first one needs its region's lease and write intent.
  const far = Math.floor(ctl.volume.size / 2 / 65536) * 65536;
  const second = seededBytes(256 * 1024, 2);
  const failed = ctl.volume.failMember(2, 'failed by the test').then(() => 'done', (err: Error) => err);
  const written = client.write(far, second).then(() => 'done', (err: Error) => err);
  await new Promise((r) => setTimeout(r, 1500));
  await server.up();
  t.equal(await withDeadline(failed, 30_000, 'the member change'), 'done', 'the member change completed once the database was back');
  t.equal(await withDeadline(written, 30_000, 'the write'), 'done', 'the write was acknowledged once the database was back');
  t.same(await client.read(0, first.length), first, 'data written before the outage reads back');
  t.same(await client.read(far, second.length), second, 'the write made across the outage reads back');
  t.equal(ctl.volume.state.offlineReason, undefined, 'the volume is online');
  const ops = backend.ops((await backend.register()).id);
  const rec = await ops.arrayGet('aw');
  t.equal(rec!.members.find((m) => m.slot === 2)?.state, 'faulty', 'the record has the member failed');
  const examined = await arr.cli('examine', rec!.members.find((m) => m.slot === 0)!.path, '--json');
  const states = (JSON.parse(examined.stdout) as { arrayState: string }[]).map((x) => x.arrayState);
  t.same(states, ['AA.A'], 'and so do the superblocks: slot 2 missing from the array state');
  t.notOk(lines.some((l) => /superblock/.test(l.message)), 'no superblock write failed');
});
