// md's internal write-intent bitmap across nbdraid (the kernel in a QEMU guest, two boots): md
// creates an array with --bitmap=internal and fills it; nbdraid either refuses it by name and
// leaves the members as they were, or assembles it, serves it, fails a member while serving and
// keeps the bitmap: every survivor's superblock still says "Internal Bitmap", and md then
// assembles the survivors with their bitmap, leaves the failed member out and reads what nbdraid
// served. Dropping the feature bit silently is the failure this test exists for.
import crypto from 'node:crypto';
import fs from 'node:fs';
import t from 'tap';
import { NbdClient } from '../../lib/transport/client.js';
import { runGuest, shareFile } from '../helpers/guest.js';
import { serveArray, type TestArray } from '../../harness/raid-array.js';
import { runJson, runTool } from '../../harness/run-tool.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';

const MiB = 1 << 20;
const STEP = 4 * MiB;
const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

t.test('md\'s internal bitmap is kept (or the array refused) by nbdraid, never dropped', async (tt) => {
  const dir = tempDir(tt);
  const members = Array.from({ length: 5 }, (_, i) => sparseImage(dir, `bm-${i}`, 16 * MiB));
  const made = await runGuest(tt, {
    disks: members.map((p) => ({ path: p })),
    timeoutMs: 180_000,
    script: String.raw`
M=/usr/sbin/mdadm
$M --create /dev/md0 --run --level=5 --raid-devices=5 --metadata=1.2 --chunk=64 --layout=left-symmetric --bitmap=internal /dev/vd[abcde] > create.txt 2>&1
$M --wait /dev/md0 || true
/usr/bin/dd if=/dev/urandom of=/dev/md0 bs=1M oflag=direct 2> dd.txt || grep -q 'No space left on device' dd.txt
$M --stop /dev/md0
`,
  });
  tt.equal(made.code, 0, `md created and filled a bitmap array (boot to power-off ${made.ms} ms)`);
  if (made.code !== 0) return void tt.comment(`${shareFile(made, 'create.txt')}\n${made.console.slice(-8000)}`);
  const examine = async (paths: string[]): Promise<string> => (await runTool('mdadm', ['--examine', ...paths], { allowFailure: true })).stdout;
  tt.equal((await examine(members)).match(/Internal Bitmap/g)?.length, 5, 'md wrote an internal bitmap on all five members');

  const state = `${dir}/state`;
  const arr: TestArray = {
    name: 'bm', state, members,
    cli: (...args) => runTool(process.execPath, [nbdraidCli, '--state', state, ...args], { timeoutMs: 60_000, cwd: dir }),
    json: (...args) => runJson(process.execPath, [nbdraidCli, '--state', state, ...args, '--json'], { timeoutMs: 60_000, cwd: dir }),
  };
  const before = members.map((p) => sha(fs.readFileSync(p)));
  const asm = await arr.cli('assemble', 'bm', ...members).catch((e: Error) => e);
  if (asm instanceof Error) {
    tt.match(asm.message, /bitmap/i, 'nbdraid refuses the array and names the bitmap');
    tt.same(members.map((p) => sha(fs.readFileSync(p))), before, 'a refused array\'s members are left as they were');
    return;
  }
  const proc = await serveArray(tt, arr);
  const c = await NbdClient.connect({ host: '127.0.0.1', port: proc.ports[0], exportName: 'bm' });
  const half = Math.floor(c.size / 2 / STEP) * STEP;
  for (let off = 0; off < half; off += STEP) await c.write(off, crypto.randomBytes(STEP));
  await c.flush();
  await arr.cli('fail', 'bm', '--member', '3');
  for (let off = half; off < c.size; off += STEP) await c.write(off, crypto.randomBytes(Math.min(STEP, c.size - off)));
  await c.flush();
  const served = crypto.createHash('sha256');
  for (let off = 0; off < c.size; off += STEP) served.update(await c.read(off, Math.min(STEP, c.size - off)));
  const size = c.size;
  await c.disconnect();
  const want = served.digest('hex');
  tt.equal(await proc.stop(), 0, 'nbdraid stops cleanly');
  const survivors = members.filter((_, i) => i !== 3);
  const after = await examine(survivors);
  tt.equal(after.match(/Internal Bitmap/g)?.length ?? 0, 4,
    'every survivor still carries md\'s internal bitmap after nbdraid wrote its superblocks');

  const r = await runGuest(tt, {
    disks: members.map((p) => ({ path: p, snapshot: true })),
    timeoutMs: 180_000,
    script: String.raw`
M=/usr/sbin/mdadm
$M --assemble --run /dev/md0 /dev/vd[abcde] > assemble.txt 2>&1
cat /proc/mdstat > mdstat.txt
$M --detail /dev/md0 > detail.txt
echo "sha $(/usr/bin/sha256sum < /dev/md0 | cut -d' ' -f1)" > result.txt
$M --stop /dev/md0
`,
  });
  tt.equal(r.code, 0, `md assembled the survivors (boot to power-off ${r.ms} ms)`);
  tt.match(shareFile(r, 'mdstat.txt'), /\[5\/4\] \[UUU_U\]/, 'md leaves out exactly the member nbdraid failed');
  tt.match(shareFile(r, 'mdstat.txt'), /bitmap:/, 'md runs the array with its bitmap');
  tt.match(shareFile(r, 'result.txt'), new RegExp(`^sha ${want}$`, 'm'), `md0 (${size} bytes) holds what nbdraid served`);
  if (!tt.passing()) tt.comment(`survivors after nbdraid:\n${after}\n${shareFile(r, 'assemble.txt')}\n${shareFile(r, 'mdstat.txt')}\n${shareFile(r, 'detail.txt')}`);
});
