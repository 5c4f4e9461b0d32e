// The Linux kernel's NBD client (nbd.ko driven by nbd-client, in a QEMU guest) against nbdraid:
// the device size the kernel sees, O_DIRECT writes and reads straddling chunk boundaries on the
// raw device, then ext4 on it (mkfs with its discards, a tree of files with sha256 sums, fstrim,
// umount, a read-only fsck that must be clean, a remount that must verify), blkdiscard, and a
// dmesg without NBD or block-layer errors. Once against one controller (`serve`), once against a
// two-controller cluster with one nbd device per controller and two connections each.
import t, { type Test } from 'tap';
import { runGuest, shareFile, type GuestResult } from '../helpers/guest.js';
import { clusterArray, createArray, serveArray } from '../../harness/raid-array.js';
import { tempDir } from '../helpers/temp-dir.js';

const GUEST_TIMEOUT_MS = 240_000;

/** Lines of the guest's dmesg that say the NBD client or the block layer saw a failure. */
function kernelErrors(dmesg: string): string[] {
  return dmesg.split('\n').filter((l) => !/NBD_DISCONNECT|Disconnected due to user request/.test(l)).filter((l) =>
    /\bnbd\d*:.*(error|timed out|dead|fail|disconnect)/i.test(l)
    || /I\/O error|blk_update_request|critical (medium|target) error|Buffer I\/O|EXT4-fs error|EXT4-fs warning|JBD2.*error/i.test(l));
}

function report(tt: Test, r: GuestResult): void {
  if (r.code !== 0 || !tt.passing()) {
    tt.comment(`guest console:\n${r.console.slice(-20_000)}`);
    tt.comment(`guest dmesg (nbd, md, block lines):\n${shareFile(r, 'dmesg.log').split('\n').filter((l) => /nbd|md|blk|I\/O|EXT4/i.test(l)).join('\n').slice(-8_000)}`);
  }
}

// The common body: $DEV is the device the file system goes on, $RAW a device for the O_DIRECT
// region (the same or another path to the same volume), $WANT the size nbdraid exports.
const BODY = String.raw`
B=/usr/sbin/blockdev
echo "size $($B --getsize64 $DEV)" > size.txt
echo "raw size $($B --getsize64 $RAW)" >> size.txt

# O_DIRECT: 3 MiB of random data at 1 MiB - 4 KiB (straddles 512 KiB chunks and a stripe), in
# 12 KiB and then 64 KiB requests, read back through the other path with O_DIRECT.
/usr/bin/dd if=/dev/urandom of=/tmp/region bs=1M count=3 status=none
/usr/bin/dd if=/tmp/region of=$DEV bs=12k seek=$((1024*1024 - 4096)) oflag=direct,seek_bytes conv=notrunc status=none
/usr/bin/dd if=$RAW of=/tmp/back bs=4k skip=$((1024/4 - 1)) count=768 iflag=direct status=none
/usr/bin/cmp /tmp/region /tmp/back
/usr/bin/dd if=/tmp/region of=$RAW bs=64k seek=$((16*16 + 1)) oflag=direct status=none
/usr/bin/dd if=$DEV of=/tmp/back bs=64k skip=$((16*16 + 1)) count=48 iflag=direct status=none
/usr/bin/cmp /tmp/region /tmp/back
echo "odirect ok"

/usr/sbin/mkfs.ext4 -q -F -t ext4 -b 4096 $DEV
mount -t ext4 $DEV /mnt/fs
mkdir -p /mnt/fs/tree/a/b /mnt/fs/tree/c
i=0
for kib in 1 7 64 100 511 513 1024 3000; do
  i=$((i + 1))
  /usr/bin/dd if=/dev/urandom of=/mnt/fs/tree/a/f$i bs=1k count=$kib status=none
  /usr/bin/dd if=/dev/urandom of=/mnt/fs/tree/a/b/g$i bs=1k count=$((kib / 2 + 1)) status=none
done
/usr/bin/dd if=/dev/urandom of=/mnt/fs/tree/c/big bs=1M count=6 status=none
echo hello > /mnt/fs/tree/c/small
cd /mnt/fs && find tree -type f | sort | xargs /usr/bin/sha256sum > /tmp/sums && cd /mnt/share
cp /tmp/sums sums.txt
rm /mnt/fs/tree/c/big
sync
/usr/sbin/fstrim -v /mnt/fs > fstrim.txt
umount /mnt/fs
/usr/sbin/e2fsck -f -n $DEV > fsck.txt 2>&1
echo "fsck clean"
mount -t ext4 $DEV /mnt/fs
cd /mnt/fs && grep -v ' tree/c/big$' /tmp/sums | /usr/bin/sha256sum -c --quiet && cd /mnt/share
echo "remount verified"
umount /mnt/fs
/usr/sbin/blkdiscard -f $DEV
echo "blkdiscard ok"
sync
`;

async function checkRun(tt: Test, r: GuestResult, size: number, devices: number): Promise<void> {
  report(tt, r);
  tt.equal(r.code, 0, `the guest script ran to the end (boot to power-off ${r.ms} ms)`);
  const sizes = shareFile(r, 'size.txt');
  tt.match(sizes, new RegExp(`^size ${size}$`, 'm'), `the kernel sees the ${size}-byte volume (blockdev --getsize64)`);
  tt.match(sizes, new RegExp(`^raw size ${size}$`, 'm'), 'through the second path as well');
  tt.match(shareFile(r, 'output.log'), /odirect ok/, 'O_DIRECT writes read back identical');
  tt.equal(shareFile(r, 'sums.txt').trim().split('\n').length, 18, 'the tree had 18 files summed');
  tt.match(shareFile(r, 'fstrim.txt'), /trimmed/, 'fstrim ran');
  tt.match(shareFile(r, 'fsck.txt'), /clean|\d+ files/, 'e2fsck -n found the file system clean');
  tt.match(shareFile(r, 'output.log'), /remount verified/, 'after a remount every file matches its sum');
  tt.match(shareFile(r, 'output.log'), /blkdiscard ok/, 'blkdiscard of the whole device succeeded');
  const dmesg = shareFile(r, 'dmesg.log');
  tt.match(dmesg, new RegExp(`nbd${devices - 1}`), 'dmesg mentions the nbd devices');
  tt.same(kernelErrors(dmesg), [], 'dmesg has no NBD, block-layer or ext4 errors');
}

t.test('kernel NBD client against one controller: ext4, O_DIRECT, discard', async (tt) => {
  const arr = await createArray({ dir: tempDir(tt), name: 'vol', memberSize: '24M' });
  const proc = await serveArray(tt, arr);
  const size = Number((await arr.json<{ size: number }>('status', arr.name)).size);
  const r = await runGuest(tt, {
    exports: [{ guestPort: 10809, hostPort: proc.ports[0] }],
    timeoutMs: GUEST_TIMEOUT_MS,
    script: String.raw`
/usr/sbin/nbd-client 10.0.2.100 10809 /dev/nbd0 -N vol -timeout 60
DEV=/dev/nbd0 RAW=/dev/nbd0
${BODY}
/usr/sbin/nbd-client -d /dev/nbd0
`,
  });
  await checkRun(tt, r, size, 1);
  tt.equal(await proc.stop(), 0, 'nbdraid serve stops cleanly after the kernel disconnected');
});

t.test('kernel NBD client against a two-controller cluster, two connections per device', async (tt) => {
  const arr = await createArray({ dir: tempDir(tt), name: 'vol', memberSize: '24M' });
  const proc = await clusterArray(tt, arr, 2);
  const size = Number((await arr.json<{ size: number }>('status', arr.name)).size);
  const r = await runGuest(tt, {
    exports: [{ guestPort: 10809, hostPort: proc.ports[0] }, { guestPort: 10810, hostPort: proc.ports[1] }],
    timeoutMs: GUEST_TIMEOUT_MS,
    script: String.raw`
/usr/sbin/nbd-client 10.0.2.100 10809 /dev/nbd0 -N vol -timeout 60 -connections 2
/usr/sbin/nbd-client 10.0.2.100 10810 /dev/nbd1 -N vol -timeout 60 -connections 2
DEV=/dev/nbd0 RAW=/dev/nbd1
${BODY}
/usr/sbin/nbd-client -d /dev/nbd0
/usr/sbin/nbd-client -d /dev/nbd1
`,
  });
  await checkRun(tt, r, size, 2);
  tt.comment(`cluster exit status after SIGTERM: ${await proc.stop()}`);
});
