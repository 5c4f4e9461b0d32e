// A member failed by nbdraid while it serves, as Linux md sees it afterwards (the kernel in a
// QEMU guest, members attached with throw-away overlays): md assembles the four survivors, leaves
// the failed member out without being forced, reports the array clean and degraded, and reads
// exactly the bytes nbdraid served after the failure (written before and after it).
import crypto from 'node:crypto';
import t from 'tap';
import { NbdClient } from '../../lib/transport/client.js';
import { runGuest, shareFile } from '../helpers/guest.js';
import { createArray, serveArray } from '../../harness/raid-array.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1 << 20;
const STEP = 4 * MiB;

t.test('md assembles the survivors of a member nbdraid failed while serving', async (tt) => {
  const dir = tempDir(tt);
  const arr = await createArray({ dir, name: 'vol', memberSize: '16M', chunk: '64K' });
  const proc = await serveArray(tt, arr);
  const c = await NbdClient.connect({ host: '127.0.0.1', port: proc.ports[0], exportName: 'vol' });
  const size = c.size;
  const image = Buffer.alloc(size);
  const fill = async (from: number, to: number): Promise<void> => {
    for (let off = from; off < to; off += STEP) {
      const buf = crypto.randomBytes(Math.min(STEP, to - off));
      await c.write(off, buf);
      buf.copy(image, off);
    }
    await c.flush();
  };
  await fill(0, size);
  await arr.cli('fail', arr.name, '--member', '1');
  await fill(0, Math.floor(size / 2 / STEP) * STEP);
  const served = crypto.createHash('sha256');
  for (let off = 0; off < size; off += STEP) served.update(await c.read(off, Math.min(STEP, size - off)));
  await c.disconnect();
  const want = crypto.createHash('sha256').update(image).digest('hex');
  tt.equal(served.digest('hex'), want, 'nbdraid serves the data written before and after the failure');
  tt.equal(await proc.stop(), 0, 'nbdraid stops cleanly');

  const r = await runGuest(tt, {
    disks: arr.members.map((p) => ({ path: p, snapshot: true })),
    timeoutMs: 240_000,
    script: String.raw`
M=/usr/sbin/mdadm
$M --examine /dev/vd[abcde] > examine.txt 2>&1
$M --assemble --run /dev/md0 /dev/vd[abcde] > assemble.txt 2>&1
cat /proc/mdstat > mdstat.txt
$M --detail /dev/md0 > detail.txt
echo "degraded $(cat /sys/block/md0/md/degraded)" > result.txt
echo "size $(/usr/sbin/blockdev --getsize64 /dev/md0)" >> result.txt
echo "sha $(/usr/bin/sha256sum < /dev/md0 | cut -d' ' -f1)" >> result.txt
$M --stop /dev/md0
`,
  });
  tt.equal(r.code, 0, `the guest script ran to the end (boot to power-off ${r.ms} ms)`);
  const result = shareFile(r, 'result.txt');
  tt.match(result, /^degraded 1$/m, 'md starts with one member missing');
  tt.match(shareFile(r, 'mdstat.txt'), /\[5\/4\] \[U_UUU\]/, 'md leaves out exactly the failed member (slot 1)');
  tt.match(shareFile(r, 'detail.txt'), /State : clean, degraded/, 'md finds the array clean and degraded');
  tt.notMatch(shareFile(r, 'assemble.txt'), /force|not enough|cannot/i, 'md needed no force');
  tt.match(result, new RegExp(`^size ${size}$`, 'm'), 'md0 is the size nbdraid served');
  tt.match(result, new RegExp(`^sha ${want}$`, 'm'), 'md0 holds the bytes nbdraid served after the failure');
  if (!tt.passing()) {
    tt.comment(`mdadm --examine:\n${shareFile(r, 'examine.txt')}\n${shareFile(r, 'assemble.txt')}\n${shareFile(r, 'detail.txt')}`);
    tt.comment(`guest console:\n${r.console.slice(-12_000)}`);
  }
});
