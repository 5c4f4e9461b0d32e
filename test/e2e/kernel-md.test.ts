// nbdraid and the Linux md driver read each other's RAID-5 members. (a) An array nbdraid created
// and wrote is assembled by md in a QEMU guest (members as virtio disks, writes to throw-away
// overlays): md0 holds the bytes nbdraid served, md's own parity check counts no mismatch, and
// with each member missing in turn md reconstructs the same bytes. (b) Arrays md created in the
// guest (all four RAID-5 layouts, 64 KiB and 512 KiB chunks, one with an internal write-intent
// bitmap) and filled with random data are assembled by nbdraid, served, read whole over NBD and
// compared with md's sha256, and `nbdraid check` finds their parity consistent.
import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { NbdClient } from '../../lib/transport/client.js';
import { runGuest, shareFile, type GuestResult } from '../helpers/guest.js';
import { createArray, serveArray, type TestArray } from '../../harness/raid-array.js';
import { runTool, runJson } from '../../harness/run-tool.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';

const MiB = 1 << 20;
const READ_STEP = 4 * MiB;

function report(tt: Test, r: GuestResult): void {
  if (r.code !== 0 || !tt.passing()) {
    tt.comment(`guest console:\n${r.console.slice(-20_000)}`);
    tt.comment(`guest dmesg (md lines):\n${shareFile(r, 'dmesg.log').split('\n').filter((l) => /md|raid|blk|I\/O/i.test(l)).join('\n').slice(-8_000)}`);
  }
}

/** sha256 of the whole export, read over NBD in 4 MiB requests. */
async function exportSha(port: number, exportName: string): Promise<{ size: number; sha: string }> {
  const c = await NbdClient.connect({ host: '127.0.0.1', port, exportName });
  try {
    const h = crypto.createHash('sha256');
    for (let off = 0; off < c.size; off += READ_STEP) h.update(await c.read(off, Math.min(READ_STEP, c.size - off)));
    return { size: c.size, sha: h.digest('hex') };
  } finally {
    await c.disconnect();
  }
}

t.test('md assembles an array nbdraid wrote: same bytes, clean parity, each member missing in turn', async (tt) => {
  const dir = tempDir(tt);
  const arr = await createArray({ dir, name: 'vol', memberSize: '24M', chunk: '64K' });
  const proc = await serveArray(tt, arr);
  const c = await NbdClient.connect({ host: '127.0.0.1', port: proc.ports[0], exportName: 'vol' });
  const size = c.size;
  const h = crypto.createHash('sha256');
  for (let off = 0; off < size; off += READ_STEP) {
    const buf = crypto.randomBytes(Math.min(READ_STEP, size - off));
    await c.write(off, buf);
    h.update(buf);
  }
  await c.flush();
  await c.disconnect();
  const want = h.digest('hex');
  tt.equal((await exportSha(proc.ports[0], 'vol')).sha, want, 'nbdraid reads back what was written');
  tt.equal(await proc.stop(), 0, 'nbdraid stops cleanly');

  const letters = 'abcde';
  const r = await runGuest(tt, {
    disks: arr.members.map((p) => ({ path: p, snapshot: true })),
    timeoutMs: 300_000,
    script: String.raw`
M=/usr/sbin/mdadm
SIZE=${size}
sum() { /usr/bin/dd if=/dev/md0 bs=64k count=$((SIZE / 65536)) status=none | /usr/bin/sha256sum | cut -d' ' -f1; }
$M --examine /dev/vda > examine.txt 2>&1
$M --assemble --run /dev/md0 /dev/vd[${letters}] > assemble.txt 2>&1
cat /proc/mdstat >> assemble.txt
echo "size $(/usr/sbin/blockdev --getsize64 /dev/md0)" > full.txt
echo "sha $(sum)" >> full.txt
echo check > /sys/block/md0/md/sync_action
i=0
while [ "$(cat /sys/block/md0/md/sync_action)" != idle ] && [ $i -lt 600 ]; do sleep 1; i=$((i + 1)); done
echo "action $(cat /sys/block/md0/md/sync_action)" >> full.txt
echo "mismatch $(cat /sys/block/md0/md/mismatch_cnt)" >> full.txt
$M --stop /dev/md0
for gone in ${[...letters].join(' ')}; do
  disks=$(for d in ${[...letters].join(' ')}; do [ $d = $gone ] || echo /dev/vd$d; done)
  $M --assemble --run /dev/md0 $disks >> assemble.txt 2>&1
  echo "$gone $(cat /sys/block/md0/md/degraded) $(sum)" >> degraded.txt
  $M --stop /dev/md0
done
`,
  });
  report(tt, r);
  tt.equal(r.code, 0, `the guest script ran to the end (boot to power-off ${r.ms} ms)`);
  const full = shareFile(r, 'full.txt');
  tt.match(full, new RegExp(`^size ${size}$`, 'm'), 'md0 is exactly the volume nbdraid serves');
  tt.match(full, new RegExp(`^sha ${want}$`, 'm'), 'md0 holds the bytes nbdraid served');
  tt.match(full, /^action idle$/m, 'md finished its parity check');
  tt.match(full, /^mismatch 0$/m, 'md counts no parity mismatch');
  const degraded = shareFile(r, 'degraded.txt').trim().split('\n');
  tt.same(degraded, [...letters].map((l) => `${l} 1 ${want}`), 'with each member missing in turn md reconstructs the same bytes');
  if (!tt.passing()) tt.comment(`mdadm --examine:\n${shareFile(r, 'examine.txt')}\n${shareFile(r, 'assemble.txt')}`);
});

interface MdSpec { name: string; layout: string; chunk: number; bitmap: boolean }
const MD_ARRAYS: MdSpec[] = [
  { name: 'ls512', layout: 'left-symmetric', chunk: 512, bitmap: false },
  { name: 'la64', layout: 'left-asymmetric', chunk: 64, bitmap: false },
  { name: 'rs512', layout: 'right-symmetric', chunk: 512, bitmap: false },
  { name: 'ra64', layout: 'right-asymmetric', chunk: 64, bitmap: false },
  { name: 'ls64bm', layout: 'left-symmetric', chunk: 64, bitmap: true },
];
const MD_MEMBER = 16 * MiB;

t.test('nbdraid assembles arrays md created: four layouts, two chunk sizes, an internal bitmap', async (tt) => {
  const dir = tempDir(tt);
  const sets = MD_ARRAYS.map((spec) => ({ spec, members: Array.from({ length: 5 }, (_, i) => sparseImage(dir, `${spec.name}-${i}`, MD_MEMBER)) }));
  const letter = (i: number): string => String.fromCharCode(97 + i);
  const script = sets.map(({ spec }, s) => {
    const devs = Array.from({ length: 5 }, (_, i) => `/dev/vd${letter(s * 5 + i)}`).join(' ');
    return String.raw`
/usr/sbin/mdadm --create /dev/md0 --run --level=5 --raid-devices=5 --metadata=1.2 --chunk=${spec.chunk} --layout=${spec.layout} --assume-clean ${spec.bitmap ? '--bitmap=internal' : '--bitmap=none'} ${devs} >> create.txt 2>&1
: > dd.txt
/usr/bin/dd if=/dev/urandom of=/dev/md0 bs=1M oflag=direct 2> dd.txt || grep -q 'No space left on device' dd.txt
sync
echo "${spec.name} $(/usr/sbin/blockdev --getsize64 /dev/md0) $(/usr/bin/sha256sum < /dev/md0 | cut -d' ' -f1)" >> md.txt
/usr/sbin/mdadm --detail /dev/md0 >> detail.txt
/usr/sbin/mdadm --stop /dev/md0
`;
  }).join('');
  const r = await runGuest(tt, { disks: sets.flatMap((s) => s.members.map((p) => ({ path: p }))), timeoutMs: 300_000, script });
  report(tt, r);
  tt.equal(r.code, 0, `the guest created and filled ${sets.length} md arrays (boot to power-off ${r.ms} ms)`);
  const mdSums = new Map(shareFile(r, 'md.txt').trim().split('\n').map((l) => l.split(' ')).map(([n, sz, sha]) => [n, { size: Number(sz), sha }]));

  for (const { spec, members } of sets) {
    await tt.test(`${spec.layout}, ${spec.chunk}K chunk${spec.bitmap ? ', internal bitmap' : ''}`, async (st) => {
      const md = mdSums.get(spec.name);
      st.ok(md, 'md recorded its size and sha256');
      if (!md) return;
      const zeros = crypto.createHash('sha256').update(Buffer.alloc(md.size)).digest('hex');
      st.not(md.sha, zeros, 'md was filled with data (not all zeros)');
      const state = path.join(dir, `${spec.name}.state`);
      const arr: TestArray = {
        name: spec.name, state, members,
        cli: (...args) => runTool(process.execPath, [nbdraidCli, '--state', state, ...args], { timeoutMs: 60_000, cwd: dir }),
        json: (...args) => runJson(process.execPath, [nbdraidCli, '--state', state, ...args, '--json'], { timeoutMs: 60_000, cwd: dir }),
      };
      const asm = await arr.cli('assemble', spec.name, ...members).catch((e: Error) => e);
      st.notOk(asm instanceof Error, `nbdraid assemble accepts the md members${asm instanceof Error ? `: ${asm.message}` : ''}`);
      if (asm instanceof Error) return;
      const status = await arr.json<{ layout: string; chunk: number; size: number; slots: string }>('status', spec.name);
      st.same({ layout: status.layout, chunk: status.chunk, size: status.size, slots: status.slots },
        { layout: spec.layout, chunk: spec.chunk * 1024, size: md.size, slots: 'UUUUU' }, 'nbdraid sees md\'s geometry and size');
      const proc = await serveArray(st, arr);
      st.same(await exportSha(proc.ports[0], spec.name), { size: md.size, sha: md.sha }, 'nbdraid serves exactly the bytes md wrote');
      const check = await arr.cli('check', spec.name, '--json');
      const result = JSON.parse(check.stdout) as { state: string; result: { mismatches: number } | null };
      st.equal(result.state, 'DONE', 'nbdraid check completes');
      st.equal(result.result?.mismatches, 0, 'nbdraid check finds md\'s parity consistent');
      st.equal(await proc.stop(), 0, 'nbdraid stops cleanly');
    });
  }
  if (!tt.passing()) tt.comment(`mdadm --create output:\n${shareFile(r, 'create.txt')}\n${fs.existsSync(r.share) ? shareFile(r, 'detail.txt') : ''}`);
});
