// A controller dies under a mounted ext4 file system on the kernel's NBD client. Two controllers
// serve one array; the guest has /dev/nbd0 on controller A (ext4 mounted, a file written and
// fsynced) and /dev/nbd1 on controller B. A is SIGKILLed. The kernel client does not move to
// another controller on its own: writes on nbd0 fail with I/O errors. After the dead device is
// unmounted and disconnected, the same file system mounted through B (journal replayed) has every
// file that was fsynced before the crash, and a read-only fsck after that is clean.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { MiB, createArray, startController } from '../helpers/cluster.js';
import { runGuest, shareFile } from '../helpers/guest.js';
import { waitUntil } from '../helpers/deadline.js';
import { tempDir } from '../helpers/temp-dir.js';

t.test('a controller dies under a mounted file system; the data fsynced before is there through another', async (tt) => {
  const arr = await createArray(tempDir(tt), { memberSize: 24 * MiB });
  const [a, b] = [await startController(tt, arr), await startController(tt, arr)];
  let share: string | undefined;
  const guest = runGuest(tt, {
    exports: [{ guestPort: 10809, hostPort: a.port }, { guestPort: 10810, hostPort: b.port }],
    timeoutMs: 240_000,
    onStart: (dir) => { share = dir; },
    script: String.raw`
N=/usr/sbin/nbd-client
$N 10.0.2.100 10809 /dev/nbd0 -N vol -timeout 10
$N 10.0.2.100 10810 /dev/nbd1 -N vol -timeout 10
/usr/sbin/mkfs.ext4 -q -F /dev/nbd0
mount -t ext4 /dev/nbd0 /mnt/fs
/usr/bin/dd if=/dev/urandom of=/mnt/fs/before bs=1M count=4 conv=fsync status=none
/usr/bin/sha256sum /mnt/fs/before | cut -d' ' -f1 > before.sha
touch ready
i=0
while [ ! -e killed ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
[ -e killed ]
rc=0
/usr/bin/dd if=/dev/urandom of=/mnt/fs/after bs=1M count=4 conv=fsync status=none 2> after-write.txt || rc=$?
echo "$rc" > after-write.rc
umount /mnt/fs 2> umount.txt || umount -l /mnt/fs 2>> umount.txt || true
$N -d /dev/nbd0 2> disconnect.txt || true
mount -t ext4 /dev/nbd1 /mnt/fs
/usr/bin/sha256sum /mnt/fs/before | cut -d' ' -f1 > through-b.sha
umount /mnt/fs
/usr/sbin/e2fsck -f -n /dev/nbd1 > fsck.txt 2>&1
$N -d /dev/nbd1
`,
  });
  await waitUntil(() => share !== undefined && fs.existsSync(path.join(share, 'ready')), 180_000, 'the guest wrote and fsynced its file', 100);
  await a.kill();
  fs.writeFileSync(path.join(share as string, 'killed'), '');
  const r = await guest;
  if (r.code !== 0 || !tt.passing()) tt.comment(`guest console:\n${r.console.slice(-20_000)}`);
  tt.equal(r.code, 0, `the guest script ran to the end (boot to power-off ${r.ms} ms)`);
  tt.not(shareFile(r, 'after-write.rc').trim(), '0', 'a write on the dead controller\'s device fails');
  // The writer sees the EIO itself, or ext4's reaction to it (the journal aborted, the file system
  // read-only) when another write met the error first; either way the kernel logged the EIO.
  tt.match(shareFile(r, 'after-write.txt'), /I\/O error|Input\/output error|Read-only file system/i, 'with EIO or the read-only file system it causes');
  tt.match(shareFile(r, 'dmesg.log'), /I\/O error, dev nbd0/, 'the kernel logged the EIO on the dead controller\'s device');
  const before = shareFile(r, 'before.sha').trim();
  tt.match(before, /^[0-9a-f]{64}$/, 'the file fsynced before the crash was summed');
  tt.equal(shareFile(r, 'through-b.sha').trim(), before, 'through the other controller the fsynced file is intact');
  tt.match(shareFile(r, 'fsck.txt'), /clean|\d+ files/, 'after the journal replay e2fsck -n finds the file system clean');
  const dmesg = shareFile(r, 'dmesg.log').split('\n').filter((l) => /nbd|EXT4|I\/O error|Buffer I\/O/.test(l));
  tt.comment(`guest kernel log (nbd, ext4, I/O lines):\n${dmesg.join('\n')}`);
  tt.comment(`write: ${shareFile(r, 'after-write.txt')} umount: ${shareFile(r, 'umount.txt')} disconnect: ${shareFile(r, 'disconnect.txt')}`);
  await b.stop();
});
