// ext4 on a cluster's volume through the kernel (nbdfuse + loop): trees of files are copied in
// while a member fails and three controllers rebuild the spare; after the rebuild the file system
// is unmounted, fsck -n through another controller finds it clean, and remounted through a third
// controller every file has its checksum. Parity is consistent afterwards.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { MiB, createArray, scrub, startController, taskOf, waitTaskEnd } from '../helpers/cluster.js';
import { makeTree, treeChecksums } from '../helpers/file-tree.js';
import { mountNbdfuse, mountUnavailable } from '../helpers/mount.js';
import { runTool } from '../../harness/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBER = 128 * MiB;
/** Copies of the tree made while the rebuild runs, at most. */
const MAX_COPIES = 6;
const unavailable = mountUnavailable();

t.test('ext4 stays fsck-clean and intact across a rebuild under load', { skip: unavailable ?? false }, async (tt) => {
  const dir = tempDir(tt);
  const tree = path.join(dir, 'tree');
  const bytes = makeTree(tree, { files: 150, maxFileBytes: 1 << 20 });
  const want = treeChecksums(tree);
  tt.comment(`tree: ${Object.keys(want).length} files, ${bytes} bytes`);

  const arr = await createArray(dir, { memberSize: MEMBER, spare: true });
  await arr.cli(['throttle', arr.name, '--min', '5', '--max', '5']);
  const [c0, c1, c2] = await Promise.all([0, 1, 2].map(() => startController(tt, arr)));
  const mnt = path.join(dir, 'mnt');
  const fsMount = await mountNbdfuse(tt, c0.uri, mnt, { mkfs: 'ext4' });

  // Copy trees until the rebuild has ended (bounded in count); fail the member during the first.
  const copies: string[] = [];
  let failing: Promise<unknown> | undefined;
  for (let i = 0; i < MAX_COPIES; i++) {
    const dest = path.join(mnt, `copy${i}`);
    fs.mkdirSync(dest);
    const cp = runTool('cp', ['-a', `${tree}/.`, dest], { timeoutMs: 120_000 });
    failing ??= arr.cli(['fail', arr.name, '--member', '2']);
    await cp;
    await runTool('sync', ['-f', mnt]);
    copies.push(dest);
    const task = await taskOf(arr, 'rebuild');
    if (task && task.task.state !== 'RUNNING' && task.task.state !== 'COMPLETING') break;
  }
  await failing;
  const rebuild = await waitTaskEnd(arr, 'rebuild', 120_000);
  tt.equal(rebuild.task.state, 'DONE', 'the rebuild completes');
  tt.comment(`${copies.length} trees were copied while the member was failed and rebuilt`);
  for (const c of copies) tt.same(treeChecksums(c), want, `${path.basename(c)} reads back equal while mounted`);
  await fsMount.unmount();

  const attached = await mountNbdfuse(tt, c1.uri, mnt, { attachOnly: true });
  const fsck = await runTool('e2fsck', ['-f', '-n', attached.loop], { allowFailure: true, timeoutMs: 120_000 });
  tt.equal(fsck.code, 0, `fsck -n through another controller finds the file system clean\n${fsck.stdout}${fsck.stderr}`);
  await attached.unmount();

  const again = await mountNbdfuse(tt, c2.uri, mnt);
  for (const c of copies) tt.same(treeChecksums(c), want, `after remounting through a third controller ${path.basename(c)} is intact`);
  await again.unmount();

  const status = await arr.json<{ slots: string }>(['status', arr.name]);
  tt.equal(status.slots, 'UUUUU', 'the array is optimal');
  await arr.cli(['throttle', arr.name, '--min', '1000', '--max', '0']);
  const check = await scrub(arr, 'check');
  tt.equal(check.result?.mismatches, 0, 'check finds no parity mismatch');
});
