// A rebuilt member is durable before its superblock says so: the completion action's superblock
// write that makes the spare an in-sync member comes after an fdatasync of the spare that follows
// its last rebuilt data write. Otherwise a power loss could keep the superblock ("in sync") and
// lose rebuilt data still in the page cache: md and nbdraid would then read garbage as data.
// strace records every pwrite64 and fdatasync on the spare, in order, across all threads.
import fs from 'node:fs';
import t from 'tap';
import { ROLE_FAULTY, ROLE_SPARE, type Superblock, decodeSuperblock, isRecovering } from '../../lib/raid/superblock.js';
import { MiB, createArray, startController, waitTaskEnd } from '../helpers/cluster.js';
import { tempDir } from '../helpers/temp-dir.js';

const SUPERBLOCK_OFFSET = 4096; // v1.2

interface Call { kind: 'write' | 'sync'; offset: number; data?: Buffer }

/**
 * The spare's pwrite64 and fdatasync calls from an `strace -f -ttt -y -s 4096 -xx` log, in time
 * order, with (up to 4 KiB of) each write's bytes.
 */
function callsOf(log: string): Call[] {
  const calls: { at: number; call: Call }[] = [];
  for (const line of log.split('\n')) {
    const m = /^\d+\s+(\d+\.\d+) (pwrite64|fdatasync)\(/.exec(line);
    if (!m || line.includes('<unfinished') === false && / = -1 /.test(line)) continue;
    if (m[2] === 'fdatasync') calls.push({ at: Number(m[1]), call: { kind: 'sync', offset: -1 } });
    else {
      const off = /, (\d+)\)\s+=/.exec(line) ?? /, (\d+) <unfinished/.exec(line);
      const hex = /, "((?:\\x[0-9a-f]{2})*)"/.exec(line);
      const data = hex ? Buffer.from(hex[1].replace(/\\x/g, ''), 'hex') : undefined;
      if (off) calls.push({ at: Number(m[1]), call: { kind: 'write', offset: Number(off[1]), data } });
    }
  }
  return calls.sort((a, b) => a.at - b.at).map((c) => c.call);
}

/** Whether a superblock write says its device is an in-sync member: a role in the array, no recovery offset. */
function saysInSync(sb: Buffer): boolean {
  let d: Superblock;
  try {
    d = decodeSuperblock(sb, 'traced write');
  } catch {
    return false; // not a whole superblock
  }
  const role = d.devRoles[d.devNumber];
  return role !== undefined && role < ROLE_FAULTY && role !== ROLE_SPARE && !isRecovering(d);
}

t.test('the rebuilt data is synced before the superblock says the member is in sync', async (t) => {
  // One region (3 x 7 MiB of data): one partition, so no recovery_offset superblock write comes
  // between the rebuilt data and the completion's (such a write is preceded by its own flush of
  // the prefix it records, not of data beyond it, so it would look like an unsynced one here).
  const arr = await createArray(tempDir(t), { memberSize: 8 * MiB, members: 4, spare: true });
  await arr.cli(['fail', arr.name, '--member', '1']);
  const log = `${arr.dir}/strace.log`;
  const c = await startController(t, arr, [], ['strace', '-f', '-qq', '-ttt', '-y', '-s', '4096', '-xx', '-o', log, '-P', arr.spare!, '-e', 'trace=pwrite64,fdatasync']);
  const done = await waitTaskEnd(arr, 'rebuild', 120_000);
  t.equal(done.task.state, 'DONE', 'the rebuild onto the spare finished');
  await c.stop();
  const calls = callsOf(fs.readFileSync(log, 'utf8'));
  const data = calls.map((x, i) => ({ ...x, i })).filter((x) => x.kind === 'write' && x.offset >= 1 * MiB);
  t.ok(data.length > 0, `the spare received rebuilt data (${data.length} writes)`);
  const lastData = data[data.length - 1].i;
  // The write that makes the spare an in-sync member, known by what it says (another superblock
  // write, e.g. marking the array clean while the member still rebuilds, may come earlier).
  const inSync = calls.findIndex((x) => x.kind === 'write' && x.offset === SUPERBLOCK_OFFSET && x.data !== undefined && saysInSync(x.data));
  t.ok(inSync > lastData, `the superblock saying the member is in sync is written after the last rebuilt data (at call ${inSync}, the data's last at ${lastData})`);
  const synced = calls.slice(lastData + 1, inSync).some((x) => x.kind === 'sync');
  t.ok(synced, `an fdatasync of the spare comes between the last data write and that superblock write (calls after the data: ${calls.slice(lastData + 1, inSync + 1).map((x) => x.kind === 'sync' ? 'fdatasync' : `pwrite@${x.offset}`).join(', ')})`);
});
