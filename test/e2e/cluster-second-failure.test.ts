// A second member failing while a rebuild runs: the array goes offline loudly (every NBD request
// on every controller fails with EIO, status says offline) and nothing acknowledged is altered -
// the volume reconstructed offline from the remaining members (the second failed member included,
// slot 2 from parity) equals every byte acknowledged before, during the rebuild and never after.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import {
  MiB, createArray, differingChunks, fioVerify, leftSymmetric, memberLayout, readDataArea, startController, taskEvents,
  taskOf, waitFor, xorAll, type ControllerProcess,
} from '../helpers/cluster.js';
import { runTool } from '../../harness/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 64 * MiB;
const MEMBERS = 5;
const REBUILT = 2;
const SECOND = 3;

/** Runs Python against `uri` with nbdsh; returns the tool's result (never throws on exit code). */
const nbdsh = (uri: string, code: string) => runTool('nbdsh', ['-u', uri, '-c', code], { allowFailure: true, timeoutMs: 30_000 });

/** Writes `len` bytes of `byte` at `offset` and waits for the reply (with FUA: acknowledged = durable). */
async function writePattern(c: ControllerProcess, offset: number, len: number, byte: number) {
  return nbdsh(c.uri, `h.pwrite(bytes([${byte}]) * ${len}, ${offset}, nbd.CMD_FLAG_FUA)`);
}

t.test('a second member failing during a rebuild takes the array offline and alters nothing acknowledged', async (tt) => {
  const dir = tempDir(tt);
  const arr = await createArray(dir, { memberSize: MEMBER, members: MEMBERS, spare: true });
  const [c0, c1] = await Promise.all([startController(tt, arr), startController(tt, arr)]);
  await fioVerify([{ uri: c0.uri, offset: 0, size: 96 * MiB }, { uri: c1.uri, offset: 128 * MiB, size: 96 * MiB }], { runtime: 60 });
  const image = path.join(dir, 'acknowledged.img');
  await runTool('nbdcopy', [c1.uri, image], { timeoutMs: 60_000 });
  const expected = fs.readFileSync(image);
  fs.rmSync(image);

  await arr.cli(['throttle', arr.name, '--min', '2', '--max', '2']);
  await arr.cli(['fail', arr.name, '--member', String(REBUILT)]);
  await waitFor('the rebuild to be under way', async () => {
    const task = await taskOf(arr, 'rebuild');
    return task && task.counts.COMPLETE > 0 && task.task.state === 'RUNNING' ? task : undefined;
  }, 60_000);

  // Acknowledged during the rebuild: one write in a rebuilt stripe, one in a stripe not yet rebuilt.
  const during = [{ c: c0, offset: 2 * MiB + 12_345, len: 70_000, byte: 0x5a }, { c: c1, offset: 200 * MiB + 4096, len: MiB, byte: 0xc3 }];
  for (const w of during) {
    const r = await writePattern(w.c, w.offset, w.len, w.byte);
    tt.equal(r.code, 0, `write of ${w.len} bytes at ${w.offset} during the rebuild is acknowledged ${r.stderr}`);
    if (r.code === 0) expected.fill(w.byte, w.offset, w.offset + w.len);
  }
  const rebuilding = await taskOf(arr, 'rebuild');
  tt.equal(rebuilding?.task.state, 'RUNNING', 'the rebuild still runs when the second member fails');

  const failed = await arr.cli(['fail', arr.name, '--member', String(SECOND), '--force'], { allowFailure: true });
  tt.equal(failed.code, 0, `fail --member ${SECOND} --force is carried out ${failed.stderr}`);
  tt.match(failed.stdout, /OFFLINE/, `and says the array is offline: ${failed.stdout.trim()}`);

  for (const c of [c0, c1]) {
    const read = await waitFor(`reads through controller ${c.id} to fail`, async () => {
      const r = await nbdsh(c.uri, `h.pread(4096, ${64 * MiB})`);
      return r.code !== 0 ? r : undefined;
    }, 15_000);
    tt.match(read.stderr, /Input\/output error|EIO/, `a read through controller ${c.id} fails with EIO`);
  }
  // Refused, so never acknowledged: it must leave the members as they were.
  const refused = await writePattern(c0, 150 * MiB, 65_536, 0x77);
  tt.not(refused.code, 0, 'a write is refused');
  tt.match(refused.stderr, /Input\/output error|EIO/, 'with EIO');

  const status = await arr.json<{ state: string; slots: string }>(['status', arr.name]);
  tt.equal(status.state, 'offline', `status shows the array offline (state ${status.state}, [${status.slots}])`);

  await Promise.all([c0.stop(), c1.stop()]);

  // Re-assembled with --force, the array is still short of two members: the controller stays up
  // and answers EIO, and the rebuild cannot complete: a partition it claims before it finds the
  // second member missing fails for want of it, and an offline volume claims no more.
  const forced = await startController(tt, arr, ['--force']);
  let forcedExit: unknown;
  void forced.exited.then((e) => { forcedExit = e; });
  // A stripe whose slot 2 was already rebuilt may still be read until the volume is offline; the
  // volume goes offline when it finds the second member missing (at once, or at its first rebuild step).
  const forcedRead = await waitFor('reads through the forced controller to fail', async () => {
    const r = await nbdsh(forced.uri, 'h.pread(4096, 0)');
    return r.code !== 0 ? r : undefined;
  }, 30_000);
  tt.match(forcedRead.stderr, /Input\/output error/, 'reads through the re-assembled array fail with EIO');
  const again = await nbdsh(forced.uri, 'h.pread(4096, 0)');
  tt.match(again.stderr, /Input\/output error/, 'it still answers (EIO): the forced controller did not crash');
  tt.equal(forcedExit, undefined, 'the forced controller is still running');
  await forced.stop();
  const byForced = (await taskEvents(arr, rebuilding!.task.id)).filter((e) => e.controller === forced.id);
  tt.same(byForced.filter((e) => /completed|partitions-complete/.test(e.kind)).map((e) => `${e.kind} ${e.partitionIdx ?? ''}`), [],
    'the forced controller completed no rebuild partition');
  for (const e of byForced.filter((x) => /failed/.test(x.kind))) {
    tt.match((e.detail as { reason?: string } | null)?.reason, /EIO|Input\/output|offline|faulty|missing/i, `${e.kind}: for want of the members`);
  }
  const after = await taskOf(arr, 'rebuild');
  tt.equal(after?.task.id, rebuilding!.task.id, 'no other rebuild was started');
  tt.not(after?.task.state, 'DONE', `the rebuild did not complete (state ${after?.task.state}, ${after?.task.reason ?? 'no reason'})`);
  tt.ok(after!.counts.COMPLETE < after!.task.partitionsTotal, `partitions left undone (${after!.counts.COMPLETE} of ${after!.task.partitionsTotal} complete)`);
  if (after?.task.state === 'FAILED') tt.match(after.task.reason, /EIO|Input\/output|offline|faulty|missing/i, 'failed for want of the members');
  // Offline reconstruction: slots 0, 1, 3, 4 from their files (slot 3 was failed by request, its
  // data is intact), slot 2 as the XOR of the others; then the volume, chunk by chunk.
  const geo = await memberLayout(arr, arr.members[0]);
  const stripes = Math.floor((MEMBER - geo.dataOffset) / geo.chunk);
  const areas = arr.members.map((m, i) => (i === REBUILT ? undefined : readDataArea(m, geo.dataOffset, stripes * geo.chunk)));
  areas[REBUILT] = xorAll(areas.filter((a): a is Buffer => a !== undefined));
  const volume = Buffer.alloc(stripes * (MEMBERS - 1) * geo.chunk);
  for (let s = 0; s < stripes; s++) {
    for (let disk = 0; disk < MEMBERS; disk++) {
      const at = leftSymmetric.chunkVolumeOffset(s, disk, MEMBERS, geo.chunk);
      if (at >= 0) areas[disk]!.copy(volume, at, s * geo.chunk, (s + 1) * geo.chunk);
    }
  }
  tt.equal(volume.length, expected.length, 'the reconstructed volume has the exported size');
  tt.same(differingChunks(volume, expected, geo.chunk), [], 'every acknowledged byte reads back from the remaining members');
});
