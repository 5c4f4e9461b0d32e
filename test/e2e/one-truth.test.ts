// The members alone tell the truth about the array (architecture invariants 6 and 8), checked
// with mdadm --examine and with nbdraid's own assembly from the members:
// - a member absent at a degraded start is left behind by events and recorded out, so a later
//   assembly of all members leaves it out instead of serving its stale data;
// - while writes are in flight the superblocks say active, and clean again after a clean stop;
// - a crash between a data write and its parity write (the process killed at that exact member
//   write by strace) leaves the array dirty: with a member missing it is refused unless forced;
//   with every member present the resync fixes the parity and every acknowledged byte is there.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { NbdClient } from '../../lib/transport/client.js';
import { createArray, serveArray, type TestArray } from '../../harness/raid-array.js';
import { freePort } from '../../harness/free-port.js';
import { runTool } from '../../harness/run-tool.js';
import { seededBytes } from '../helpers/prng.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { spawnServer, startReady } from '../../harness/spawn-ready.js';
import { tempDir } from '../helpers/temp-dir.js';

const MIB = 1 << 20;

interface Examined { events: number; state: string; arrayState: string }

async function examine(member: string): Promise<Examined> {
  const r = await runTool('mdadm', ['--examine', member]);
  const field = (name: string) => new RegExp(`^\\s*${name} : (.*)$`, 'm').exec(r.stdout)?.[1].trim() ?? '';
  return { events: Number(field('Events')), state: field('State'), arrayState: field('Array State').split(' ')[0] };
}

async function connect(port: number, name: string): Promise<NbdClient> {
  return NbdClient.connect({ host: '127.0.0.1', port, exportName: name });
}

async function writeSpan(c: NbdClient, offset: number, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += MIB) await c.write(offset + at, data.subarray(at, Math.min(data.length, at + MIB)));
  await c.flush();
}

t.test('a member absent at a degraded start stays out, for mdadm and for nbdraid', async (t) => {
  const arr = await createArray({ dir: tempDir(t, 'nbdraid-truth-absent-'), name: 'absent', memberSize: '40M' });
  const A = seededBytes(32 * MIB, 1);
  const B = seededBytes(32 * MIB, 2);
  let srv = await serveArray(t, arr);
  let c = await connect(srv.ports[0], arr.name);
  await writeSpan(c, 0, A);
  await c.disconnect();
  await srv.stop();

  const start = await examine(arr.members[3]);
  const without = arr.members.filter((_, i) => i !== 3);
  const asm = await arr.cli('assemble', arr.name, ...without);
  t.match(asm.stdout, /degraded \(slot 3 missing\)/, 'assembled degraded without slot 3');
  srv = await serveArray(t, arr);
  c = await connect(srv.ports[0], arr.name);
  await writeSpan(c, 0, B);
  await c.disconnect();
  await srv.stop();

  const absent = await examine(arr.members[3]);
  const survivor = await examine(arr.members[0]);
  t.equal(absent.events, start.events, 'the absent member was not touched');
  t.ok(survivor.events >= absent.events + 2, `survivors moved on by at least 2 events (${absent.events} -> ${survivor.events}): md kicks it as non-fresh`);
  t.equal(survivor.arrayState, 'AAA.A', 'survivors record slot 3 out');
  t.equal(survivor.state, 'clean', 'clean after a clean stop');

  const all = await arr.cli('assemble', arr.name, ...arr.members);
  t.match(all.stdout, /assembled absent with 4 of 5 members, degraded \(slot 3 missing\)/, 'all five given: the stale one is left out');
  t.match(all.stdout, new RegExp(`${arr.members[3]}: (stale|faulty)`), 'and named with its reason');
  srv = await serveArray(t, arr);
  c = await connect(srv.ports[0], arr.name);
  const got = await c.read(0, 32 * MIB);
  t.ok(got.equals(B), 'the volume serves what was written while slot 3 was away');
  await c.disconnect();
});

t.test('superblocks say active while writes are in flight and clean after a clean stop', async (t) => {
  const arr = await createArray({ dir: tempDir(t, 'nbdraid-truth-active-'), name: 'active', memberSize: '40M' });
  const before = await examine(arr.members[1]);
  t.equal(before.state, 'clean', 'clean when created');
  const srv = await serveArray(t, arr);
  const c = await connect(srv.ports[0], arr.name);
  await c.write(123 * 4096, seededBytes(64 * 1024, 3));
  const during = await Promise.all(arr.members.map(examine));
  t.same(during.map((e) => e.state), Array(5).fill('active'), 'every member says active once a write is acknowledged');
  t.ok(during[0].events > before.events, `events moved (${before.events} -> ${during[0].events})`);
  await c.disconnect();
  await srv.stop();
  const after = await Promise.all(arr.members.map(examine));
  t.same(after.map((e) => e.state), Array(5).fill('clean'), 'every member says clean after the controller stopped cleanly');
  t.ok(after[0].events > during[0].events, 'the clean mark is a new event');
  t.same(new Set(after.map((e) => e.events)).size, 1, 'all members at the same events');
});

/** Serves the array with the process killed at the `when`-th write to `member` (counted by strace). */
async function serveKilledAt(t: Test, arr: TestArray, member: string, when: number) {
  const { s, endpoints: [{ port }] } = await startReady(t, {
    name: 'nbdraid under strace', timeoutMs: 30_000,
    launch: ([e]) => spawnServer('strace', ['-f', '-qq', '-o', '/dev/null', '-P', member, '-e', 'trace=pwrite64,pwritev',
      '-e', `inject=pwrite64:signal=SIGKILL:when=${when}`,
      process.execPath, nbdraidCli, '--state', arr.state, 'serve', arr.name, '--listen', `127.0.0.1:${e.port}`]),
  });
  return { s, client: await connect(port as number, arr.name) };
}

t.test('killed between a data write and its parity write: dirty; degraded refused without --force; resync fixes it', async (t) => {
  const dir = tempDir(t, 'nbdraid-truth-crash-');
  const arr = await createArray({ dir, name: 'torn', memberSize: '40M' });
  // left-symmetric, 5 members, 512 KiB chunks: stripe 0 has data chunk 0 on m0, chunk 1 on m1, parity on m4.
  const parity = arr.members[4];
  const { s, client } = await serveKilledAt(t, arr, parity, 3); // m4's writes: superblock (active), parity of X, parity of Y
  const X = seededBytes(4096, 4);
  await client.write(512 * 1024, X); // chunk 1: acknowledged, then flushed
  await client.flush();
  const Y = seededBytes(4096, 5);
  const killed = await client.write(0, Y).then(() => 'acknowledged', () => 'failed');
  const died = await Promise.race([s.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 20_000).unref())]);
  client.close();
  if (!died) await s.kill();
  t.ok(died, 'the controller died at the third write to the parity member (superblock marked active, parity of X, parity of Y)');
  t.equal(killed, 'failed', 'the write of Y was never acknowledged: the process died at its parity write');
  if (!died) return;
  const exam = await examine(arr.members[0]);
  t.equal(exam.state, 'active', 'the members say the array was active when it died');

  // Take m1 away: the acknowledged X would be rebuilt from stale parity.
  const away = `${arr.members[1]}.away`;
  fs.renameSync(arr.members[1], away);
  const eventsBefore = (await examine(arr.members[0])).events;
  const refused = await runTool(process.execPath, [nbdraidCli, '--state', arr.state, 'serve', arr.name, '--listen', `127.0.0.1:${await freePort()}`],
    { allowFailure: true, timeoutMs: 30_000 });
  t.not(refused.code, 0, 'serving dirty and degraded is refused');
  t.match(refused.stderr, /dirty.*degraded.*--force/s, 'and says why and what to do');
  t.notMatch(refused.stderr, /\n\s+at /, 'no stack trace');
  t.equal((await examine(arr.members[0])).events, eventsBefore, 'the refusal changed nothing on the members');

  fs.renameSync(away, arr.members[1]);
  // The dead controller's dirty region is resynced before anyone uses it (here: the read of X).
  const srv = await serveArray(t, arr);
  const c = await connect(srv.ports[0], arr.name);
  t.ok((await c.read(512 * 1024, 4096)).equals(X), 'with every member back, X reads back');
  await c.disconnect();
  const check = await arr.json<{ state: string; result: { mismatches: number } }>('check', arr.name);
  t.same([check.state, check.result.mismatches], ['DONE', 0], 'parity is right everywhere after the resync');
  await srv.stop();
  t.equal((await examine(arr.members[2])).state, 'clean', 'clean once resynced and stopped');
});
