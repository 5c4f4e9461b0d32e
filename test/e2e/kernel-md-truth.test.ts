// Linux md reads the members after nbdraid's life cycle (the kernel in a QEMU guest):
// - a member absent at a degraded start, then written around: md leaves it out ([5/4]) and
//   serves the newer data, as nbdraid does;
// - a controller SIGKILLed right after acknowledged writes: the members say active, md resyncs
//   the array on assembly and its check then finds no mismatch; the flushed data is there;
// - a rebuild onto a hot spare: md assembles the five current members in sync, its check finds
//   no mismatch and /dev/md reads exactly what nbdraid served.
// One guest boot assembles all three sets of member files (attached read-only: snapshot=on).
import crypto from 'node:crypto';
import t, { type Test } from 'tap';
import { NbdClient } from '../../lib/transport/client.js';
import { runGuest, shareFile } from '../helpers/guest.js';
import { createArray, lastTaskId, serveArray, waitTask, type TestArray } from '../../harness/raid-array.js';
import { runTool } from '../../harness/run-tool.js';
import { seededBytes } from '../helpers/prng.js';
import { tempDir } from '../helpers/temp-dir.js';

const MIB = 1 << 20;

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

async function write(port: number, name: string, offset: number, data: Buffer, flush = true): Promise<NbdClient> {
  const c = await NbdClient.connect({ host: '127.0.0.1', port, exportName: name });
  for (let at = 0; at < data.length; at += MIB) await c.write(offset + at, data.subarray(at, Math.min(data.length, at + MIB)));
  if (flush) await c.flush();
  return c;
}

async function state(member: string): Promise<string> {
  const r = await runTool('mdadm', ['--examine', member]);
  return /^\s*State : (\S+)/m.exec(r.stdout)?.[1] ?? '';
}

/** Set 1: written with slot 3 absent. Returns the sha of the first 32 MiB as served. */
async function absentSet(t: Test, dir: string): Promise<{ arr: TestArray; want: string }> {
  const arr = await createArray({ dir, name: 'absent', memberSize: '24M' });
  let srv = await serveArray(t, arr);
  (await write(srv.ports[0], arr.name, 0, seededBytes(16 * MIB, 1))).close();
  await srv.stop();
  await arr.cli('assemble', arr.name, ...arr.members.filter((_, i) => i !== 3));
  srv = await serveArray(t, arr);
  const B = seededBytes(16 * MIB, 2);
  (await write(srv.ports[0], arr.name, 0, B)).close();
  await srv.stop();
  return { arr, want: sha(B) };
}

/** Set 2: SIGKILLed right after acknowledged, flushed writes (members active). */
async function crashedSet(t: Test, dir: string): Promise<{ arr: TestArray; want: string; wasActive: string }> {
  const arr = await createArray({ dir, name: 'crashed', memberSize: '24M' });
  const srv = await serveArray(t, arr);
  const W = seededBytes(8 * MIB, 3);
  const c = await write(srv.ports[0], arr.name, 4 * MIB, W);
  await c.write(40 * MIB, seededBytes(3 * 4096, 4)); // a partial stripe, acknowledged, not flushed
  const wasActive = await state(arr.members[0]);
  await srv.kill();
  c.close();
  return { arr, want: sha(W), wasActive };
}

/** Set 3: rebuilt onto a spare. Returns the current members and the sha of the whole volume. */
async function rebuiltSet(t: Test, dir: string): Promise<{ members: string[]; want: string; size: number }> {
  const arr = await createArray({ dir, name: 'rebuilt', memberSize: '24M' });
  const spare = `${dir}/spare`;
  await arr.cli('add-spare', arr.name, spare, '--size', '24M');
  const srv = await serveArray(t, arr);
  const c = await write(srv.ports[0], arr.name, 2 * MIB, seededBytes(20 * MIB, 5));
  const before = await lastTaskId(arr);
  await arr.cli('fail', arr.name, '--member', '2');
  const done = await waitTask(arr, 'rebuild', before, 120_000);
  t.equal(done.task.state, 'DONE', 'nbdraid rebuilt slot 2 onto the spare');
  const all = Buffer.alloc(c.size);
  for (let at = 0; at < c.size; at += 16 * MIB) (await c.read(at, Math.min(16 * MIB, c.size - at))).copy(all, at);
  await c.disconnect();
  await srv.stop();
  return { members: arr.members.map((m, i) => (i === 2 ? spare : m)), want: sha(all), size: all.length };
}


const WAIT_IDLE = String.raw`
wait_idle() { # md device; bounded: 600 x 1 s
  n=0
  while [ "$(cat /sys/block/$1/md/sync_action)" != idle ] || grep -q "$1.*resync=\(DELAYED\|PENDING\)" /proc/mdstat; do
    n=$((n + 1)); [ $n -le 600 ] || { echo "$1 never went idle" >&2; return 1; }
    sleep 1
  done
}
check_md() { # md device, tag: md's own parity check
  echo check > /sys/block/$1/md/sync_action
  sleep 1
  wait_idle $1
  cat /sys/block/$1/md/mismatch_cnt > mismatch-$2.txt
}
`;

t.test('Linux md after nbdraid: absent member left out, crash resynced, rebuild in sync', async (t) => {
  const dir = tempDir(t, 'nbdraid-kernel-truth-');
  const absent = await absentSet(t, `${dir}`);
  const crashDir = tempDir(t, 'nbdraid-kernel-crash-');
  const crashed = await crashedSet(t, crashDir);
  t.equal(crashed.wasActive, 'active', 'the crashed array\'s members said active while written');
  const rebuilt = await rebuiltSet(t, tempDir(t, 'nbdraid-kernel-rebuilt-'));

  const disks = [...absent.arr.members, ...crashed.arr.members, ...rebuilt.members].map((path) => ({ path, snapshot: true }));
  const r = await runGuest(t, {
    disks, timeoutMs: 420_000, memMiB: 512,
    script: String.raw`
M=/usr/sbin/mdadm
${WAIT_IDLE}
$M --assemble --run /dev/md1 /dev/vda /dev/vdb /dev/vdc /dev/vdd /dev/vde > asm1.txt 2>&1
cat /proc/mdstat > mdstat1.txt
/usr/bin/dd if=/dev/md1 bs=1M count=16 status=none | /usr/bin/sha256sum > sha1.txt
wait_idle md1
check_md md1 1
$M --stop /dev/md1

$M --assemble --run /dev/md2 /dev/vdf /dev/vdg /dev/vdh /dev/vdi /dev/vdj > asm2.txt 2>&1
sleep 1
wait_idle md2
cat /proc/mdstat > mdstat2.txt
/usr/bin/dd if=/dev/md2 bs=1M skip=4 count=8 status=none | /usr/bin/sha256sum > sha2.txt
check_md md2 2
$M --stop /dev/md2

$M --assemble --run /dev/md3 /dev/vdk /dev/vdl /dev/vdm /dev/vdn /dev/vdo > asm3.txt 2>&1
cat /proc/mdstat > mdstat3.txt
wait_idle md3
/usr/sbin/blockdev --getsize64 /dev/md3 > size3.txt
/usr/bin/dd if=/dev/md3 bs=1M status=none | /usr/bin/sha256sum > sha3.txt
check_md md3 3
$M --stop /dev/md3
`,
  });
  const file = (n: string) => shareFile(r, n);
  if (r.code !== 0 || !t.passing()) t.comment(`guest output:\n${file('output.log')}\n${r.console.slice(-10_000)}`);
  t.equal(r.code, 0, `the guest script ran to the end (boot to power-off ${r.ms} ms)`);

  t.match(file('mdstat1.txt'), /md1 : active raid5 [^\n]*\n[^\n]*\[5\/4\] \[UUU_U\]/, 'md starts the absent-member array with 4 of 5');
  t.notMatch(file('mdstat1.txt'), /vdd\[/, 'without the member that was absent');
  t.match(file('asm1.txt') + file('dmesg.log'), /vdd|non-fresh/, 'md says it left vdd out');
  t.equal(file('sha1.txt').split(' ')[0], absent.want, 'md reads the data written while it was absent');
  t.equal(file('mismatch-1.txt').trim(), '0', 'md\'s check finds no mismatch');

  t.match(file('dmesg.log'), /resync of RAID array md2/, 'md resyncs the array nbdraid left active');
  t.match(file('mdstat2.txt'), /md2 : active raid5 [^\n]*\n[^\n]*\[5\/5\] \[UUUUU\]/, 'with all five members');
  t.equal(file('sha2.txt').split(' ')[0], crashed.want, 'the flushed writes are there');
  t.equal(file('mismatch-2.txt').trim(), '0', 'and md\'s check afterwards finds no mismatch');

  t.match(file('mdstat3.txt'), /md3 : active raid5 [^\n]*\n[^\n]*\[5\/5\] \[UUUUU\]/, 'md assembles the rebuilt array in sync');
  t.equal(Number(file('size3.txt').trim()), rebuilt.size, 'at the size nbdraid serves');
  t.equal(file('sha3.txt').split(' ')[0], rebuilt.want, 'and reads exactly what nbdraid served');
  t.equal(file('mismatch-3.txt').trim(), '0', 'md\'s check finds no mismatch');
});
