// Fencing on PostgreSQL: a controller whose heartbeats go unanswered holds every member request
// from T/2 on its own clock, resumes when a heartbeat is answered again (nobody could have reaped
// it meanwhile), and past T stops for good: nothing it had not acknowledged reaches a member, and
// a controller started later serves every acknowledged write. The controller reaches a real
// PostgreSQL only through a relay that the test cuts, as a network that drops its packets.
import path from 'node:path';
import t from 'tap';
import { Controller } from '../../lib/controller/controller.js';
import { PgBackend } from '../../lib/coordination/pg/index.js';
import type { CoordinationTarget } from '../../lib/coordination/target.js';
import type { LogEntry } from '../../lib/log.js';
import { NbdClient } from '../../lib/transport/client.js';
import { safeTeardown } from '../../harness/cleanup.js';
import { createArray } from '../../harness/raid-array.js';
import { blackholeProxy } from '../helpers/blackhole-proxy.js';
import { moveToPostgres } from '../helpers/pg-array.js';
import { waitUntil, withDeadline } from '../helpers/deadline.js';
import { startPostgres } from '../helpers/postgres.js';
import { seededBytes } from '../helpers/prng.js';
import { tempDir } from '../helpers/temp-dir.js';

const T = 6000;

t.test('a controller cut off from PostgreSQL holds member I/O, resumes, and past T stops for good', async (t) => {
  const server = await startPostgres(t, { listen: '127.0.0.1' });
  await server.psql('CREATE DATABASE fence');
  const direct = `postgresql://${server.user}@127.0.0.1:${server.port}/fence`;
  const proxy = await blackholeProxy(t, '127.0.0.1', server.port);
  const relayed = `postgresql://${server.user}@127.0.0.1:${proxy.port}/fence`;

  // Members made and recorded by the CLI, the record then moved to PostgreSQL as it is.
  const dir = tempDir(t, 'nbdraid-fence-');
  const arr = await createArray({ dir, name: 'fz', members: 4, memberSize: '16M', chunk: '64K' });
  const backend = await PgBackend.open(direct, { deadAfterMs: T });
  t.teardown(() => backend.close());
  await moveToPostgres(arr, backend);

  const target = (uri: string): CoordinationTarget => ({ kind: 'postgres', uri, deadAfterMs: T });
  const lines: LogEntry[] = [];
  const events = () => lines.map((l) => l.event);
  const sock = path.join(dir, 'a.sock');
  const ctl = await Controller.start({ stateDir: arr.state, arrayName: 'fz', listen: { path: sock }, coordination: target(relayed), log: (e) => { lines.push(e); } });
  let stopped = false;
  safeTeardown(t, 'controller stop', async () => { if (!stopped) await ctl.stop(); });
  const client = await NbdClient.connect({ path: sock, exportName: 'fz' });
  safeTeardown(t, 'client close', () => client.close());

  const one = seededBytes(64 * 1024, 1);
  await client.write(0, one);
  await client.flush();
  t.same(await client.read(0, one.length), one, 'served through the relay');

  // Cut: held from T/2, and a write sent then is not acknowledged while held.
  proxy.cut();
  t.equal(ctl.fence.state, 'open', 'not held at once: the last heartbeat was answered well within T/2');
  await waitUntil(() => ctl.fence.state === 'held', T, 'the fence to hold after T/2 without heartbeats', 20);
  t.ok(events().includes('controller.fenced'), 'the hold is logged');
  const two = seededBytes(64 * 1024, 2);
  let acked = false;
  const pending = client.write(1 << 20, two).then(() => { acked = true; });
  await waitUntil(() => ctl.fence.waiting > 0, 5000, 'the write to wait at the fence', 10);
  t.notOk(acked, 'a write is not acknowledged while the fence holds');

  // Healed before T: an answered heartbeat proves nobody reaped it, and the write goes on.
  proxy.heal();
  await withDeadline(pending, T, 'the held write once healed');
  t.equal(ctl.fence.state, 'open', 'open again');
  t.ok(events().includes('controller.renewed'), 'the renewal is logged');
  t.same(await client.read(1 << 20, two.length), two, 'the held write landed after the heal');

  // Cut past T: lost. The fence is sealed, the controller ends, and a write sent after the hold
  // is never acknowledged.
  proxy.cut();
  await waitUntil(() => ctl.fence.state === 'held', T, 'the fence to hold again', 20);
  const three = seededBytes(64 * 1024, 3);
  let threeAcked = false;
  const late = client.write(2 << 20, three).then(() => { threeAcked = true; }, () => undefined);
  const why = await withDeadline(ctl.ended, 2 * T, 'the controller to give up past T');
  stopped = true;
  t.match(why, /no heartbeat answered/, `ended: ${why}`);
  t.equal(ctl.fence.state, 'sealed', 'sealed for good');
  t.ok(events().includes('controller.lost'), 'the loss is logged');
  proxy.heal();
  await withDeadline(late, 30_000, 'the cut-off client to see its connection end');
  t.notOk(threeAcked, 'the write sent while fenced was never acknowledged');
  client.close();

  // Another controller, straight to the database, takes over once the first is reaped (after T by
  // the database clock): every acknowledged write is there.
  const sock2 = path.join(dir, 'b.sock');
  const next = await Controller.start({ stateDir: arr.state, arrayName: 'fz', listen: { path: sock2 }, coordination: target(direct), log: () => {} });
  safeTeardown(t, 'second controller stop', () => next.stop());
  const c2 = await NbdClient.connect({ path: sock2, exportName: 'fz' });
  safeTeardown(t, 'second client close', () => c2.close());
  t.same(await withDeadline(c2.read(0, one.length), 3 * T, 'read of the first write'), one, 'the first acknowledged write survives');
  t.same(await c2.read(1 << 20, two.length), two, 'the write acknowledged after the heal survives');
  const ctlRows = await backend.pool.query<{ id: number; state: string }>('SELECT id, state FROM controllers WHERE id = $1', [ctl.id]);
  t.not(ctlRows.rows[0].state, 'live', `the cut-off controller's row ended (${ctlRows.rows[0].state})`);
});
