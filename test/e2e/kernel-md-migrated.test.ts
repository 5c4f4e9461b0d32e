// Linux md reads members nbdraid migrated. Set A: a 3-member 64K left-symmetric array grown in
// place to 4 members, 16K chunk, right-asymmetric (the data offset moved down, md's new_offset),
// to the end: md assembles it as that geometry, holds the bytes written before the migration, and
// its parity check counts no mismatch. Set B: the same migration stopped halfway, superblocks
// saying a reshape is in progress: md assembles it and continues the reshape itself, and ends
// with the same bytes and clean parity.
import crypto from 'node:crypto';
import t, { type Test } from 'tap';
import { planMigration } from '../../lib/raid/migration-offset.js';
import { migrateOffline } from '../../lib/raid/migration-run.js';
import { runGuest, shareFile, type GuestResult } from '../helpers/guest.js';
import { rng } from '../helpers/prng.js';
import { fileArray, fill, quietVolume } from '../raid/fixture.js';

const K = 1024;
const MIB = 1 << 20;
const MEMBER = 8 * MIB;

class Stop extends Error {}

/** A filled array migrated in place, stopped after `fraction` of its partitions (default all). */
async function migrated(tt: Test, fraction = 1) {
  const fx = await fileArray(tt, 3, MEMBER, { chunk: 64 * K, dataOffset: MIB, extra: 1 });
  const ref = Buffer.alloc(fx.meta.geometry().size);
  await fill(quietVolume(fx.meta, { trackClean: false }), ref, rng(42), 400, 256);
  const plan = planMigration(fx.meta.geometry(), { members: 4, chunk: 16 * K, layout: 'right-asymmetric' },
    { partitionBytes: 512 * K, room: { lowest: 8192, memberBytes: MEMBER } });
  const stopAfter = fraction < 1 ? Math.floor(plan.partitions.length * fraction) : -1;
  let done = 0;
  try {
    await migrateOffline(fx.meta, plan, [{ device: fx.handles[3].device, path: fx.paths[3] }], {
      onPartition: () => {
        if (++done === stopAfter) throw new Stop();
      },
    });
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
  }
  await fx.close();
  const d = plan.geometry.destination;
  const want = Buffer.concat([ref, Buffer.alloc(d.size - ref.length)]);
  return { paths: fx.paths, size: d.size, oldSize: ref.length, sha: sha(want), oldSha: sha(ref), partitions: plan.partitions.length };
}

function sha(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

function report(tt: Test, r: GuestResult): void {
  if (r.code !== 0 || !tt.passing()) {
    tt.comment(`guest console:\n${r.console.slice(-20_000)}`);
    tt.comment(`guest dmesg (md lines):\n${shareFile(r, 'dmesg.log').split('\n').filter((l) => /md|raid/i.test(l)).join('\n').slice(-8_000)}`);
  }
}

t.test('md assembles migrated members, and continues a migration stopped halfway', async (tt) => {
  const a = await migrated(tt);
  const b = await migrated(tt, 0.5);
  const r = await runGuest(tt, {
    disks: [...a.paths, ...b.paths].map((p) => ({ path: p, snapshot: true })),
    timeoutMs: 300_000,
    script: String.raw`
M=/usr/sbin/mdadm
sum() { /usr/bin/dd if=$1 bs=4k count=$(($2 / 4096)) status=none | /usr/bin/sha256sum | cut -d' ' -f1; }
idle() { i=0; while [ "$(cat /sys/block/$1/md/sync_action)" != idle ] && [ $i -lt 240 ]; do sleep 1; i=$((i + 1)); done; }
$M --examine /dev/vda /dev/vde > examine.txt 2>&1
$M --assemble --run /dev/md0 /dev/vd[abcd] > a.txt 2>&1
cat /proc/mdstat >> a.txt
$M --detail /dev/md0 >> a.txt 2>&1
echo "size $(/usr/sbin/blockdev --getsize64 /dev/md0)" > a-result.txt
echo "sha $(sum /dev/md0 ${a.size})" >> a-result.txt
echo check > /sys/block/md0/md/sync_action
idle md0
echo "mismatch $(cat /sys/block/md0/md/mismatch_cnt)" >> a-result.txt
$M --stop /dev/md0
$M --assemble --run /dev/md1 /dev/vd[efgh] > b.txt 2>&1 || echo "assemble failed $?" >> b.txt
cat /proc/mdstat >> b.txt
sleep 2
idle md1
cat /proc/mdstat >> b.txt
$M --detail /dev/md1 >> b.txt 2>&1
echo "size $(/usr/sbin/blockdev --getsize64 /dev/md1)" > b-result.txt
$M --detail /dev/md1 | grep -E 'Raid Devices|Layout|Chunk Size|Reshape' >> b-result.txt || true
echo "sha-old $(sum /dev/md1 ${b.oldSize})" >> b-result.txt
echo check > /sys/block/md1/md/sync_action
idle md1
echo "mismatch $(cat /sys/block/md1/md/mismatch_cnt)" >> b-result.txt
$M --stop /dev/md1
`,
  });
  report(tt, r);
  tt.equal(r.code, 0, `the guest script ran to the end (boot to power-off ${r.ms} ms)`);
  const ra = shareFile(r, 'a-result.txt');
  tt.match(ra, new RegExp(`^size ${a.size}$`, 'm'), 'A: md0 is the destination volume');
  tt.match(ra, new RegExp(`^sha ${a.sha}$`, 'm'), 'A: md0 holds the bytes written before the migration');
  tt.match(ra, /^mismatch 0$/m, 'A: md finds the parity consistent');
  const ex = shareFile(r, 'examine.txt');
  tt.equal(ex.match(/Reshape pos'n/g)?.length, 1, 'B was handed to md mid-migration (A was not)');
  const rb = shareFile(r, 'b-result.txt');
  tt.match(rb, /Raid Devices : 4\n\s*Layout : right-asymmetric\n\s*Chunk Size : 16K/, 'B: md finished in the destination geometry');
  tt.notMatch(rb, /Reshape/, 'B: no reshape left');
  tt.match(rb, new RegExp(`^size ${b.size}$`, 'm'), 'B: md1 grew to the destination volume');
  tt.match(rb, new RegExp(`^sha-old ${b.oldSha}$`, 'm'), 'B: md continued the migration; the volume holds its bytes');
  tt.match(rb, /^mismatch 0$/m, 'B: md finds the parity consistent');
  if (!tt.passing()) tt.comment(`a.txt:\n${shareFile(r, 'a.txt')}\nb.txt:\n${shareFile(r, 'b.txt')}`);
});
