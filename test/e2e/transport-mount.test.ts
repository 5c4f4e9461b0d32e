// The Linux kernel path on a machine without nbd.ko (scripts/mount-nbdfuse.sh): nbdfuse exposes
// the export as a file, a loop device attaches it, mkfs.ext4, mount, copy a tree of files in,
// unmount; fsck -n through a fresh attachment finds it clean; remount and every checksum matches.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { makeTree, treeChecksums } from '../helpers/file-tree.js';
import { mountNbdfuse, mountUnavailable } from '../helpers/mount.js';
import { runTool } from '../../harness/run-tool.js';
import { startNbdraid } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';

const SIZE = 256 << 20;
const unavailable = mountUnavailable();

t.test('ext4 over nbdfuse + loop: copy a tree, fsck clean, remount, checksums equal', { skip: unavailable ?? false }, async (tt) => {
  const dir = tempDir(tt);
  const tree = path.join(dir, 'tree');
  const bytes = makeTree(tree, { files: 300, maxFileBytes: 1 << 20 });
  fs.writeFileSync(path.join(tree, 'empty'), '');
  const want = treeChecksums(tree);
  tt.comment(`tree: ${Object.keys(want).length} files, ${bytes} bytes`);

  const server = await startNbdraid(tt, { file: sparseImage(dir, 'disk.img', SIZE), exportName: 'fs' });
  const mnt = path.join(dir, 'mnt');
  const first = await mountNbdfuse(tt, server.uri(), mnt, { mkfs: 'ext4' });
  tt.match(first.loop, /^\/dev\/loop\d+$/, 'a loop device is attached');
  await runTool('cp', ['-a', `${tree}/.`, mnt], { timeoutMs: 120_000 });
  await runTool('sync', ['-f', mnt]);
  tt.same(treeChecksums(mnt), want, 'files read back equal while mounted');
  await first.unmount();

  const check = await mountNbdfuse(tt, server.uri(), mnt, { attachOnly: true });
  const fsck = await runTool('e2fsck', ['-f', '-n', check.loop], { allowFailure: true, timeoutMs: 120_000 });
  tt.equal(fsck.code, 0, `fsck -n finds the file system clean\n${fsck.stdout}${fsck.stderr}`);
  await check.unmount();

  const again = await mountNbdfuse(tt, server.uri(), mnt);
  tt.same(treeChecksums(mnt), want, 'after remount every file has its checksum');
  await again.unmount();
  const mounts = fs.readFileSync('/proc/mounts', 'utf8');
  tt.notOk(mounts.includes(dir), 'nothing is left mounted');
  const loops = await runTool('losetup', ['-n', '-O', 'BACK-FILE', '-l'], { allowFailure: true });
  tt.notOk(loops.stdout.includes(dir), 'no loop device is left attached');
});
