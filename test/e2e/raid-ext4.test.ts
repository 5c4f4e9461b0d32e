// ext4 on a served 4+1 RAID-5 array through the kernel path (scripts/mount-nbdfuse.sh: nbdfuse,
// loop device, mkfs.ext4, mount). A tree of files is copied in, in three parts: the first with
// all members, the second file by file with fsync while `nbdraid fail NAME --member 2` runs (more
// files follow until it returns; the page cache of the first part is still being written back), the third degraded. Then: checksums equal while
// mounted, unmount, e2fsck -f -n clean through a fresh attachment, remount, checksums equal.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { makeTree, treeChecksums } from '../helpers/file-tree.js';
import { mountNbdfuse, mountUnavailable } from '../helpers/mount.js';
import { createArray, serveArray } from '../../harness/raid-array.js';
import { runTool } from '../../harness/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';

const unavailable = mountUnavailable();

/** Relative paths of every regular file under `root`, in a stable order. */
function listFiles(root: string): string[] {
  return (fs.readdirSync(root, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

/** Copies `files`; with `sync` each file is fsynced, so its blocks reach the array before the next one. */
async function copyFiles(files: string[], from: string, to: string, sync = false): Promise<void> {
  for (const f of files) {
    await fs.promises.mkdir(path.dirname(path.join(to, f)), { recursive: true });
    await fs.promises.copyFile(path.join(from, f), path.join(to, f));
    if (!sync) continue;
    const h = await fs.promises.open(path.join(to, f), 'r+');
    await h.sync().finally(() => h.close());
  }
}

t.test('ext4 on the array: member 2 fails while files are written; fsck clean, checksums equal', { skip: unavailable ?? false }, async (tt) => {
  const dir = tempDir(tt, 'nbdraid-raid-ext4-');
  const tree = path.join(dir, 'tree');
  const bytes = makeTree(tree, { files: 240, maxFileBytes: 1 << 20 });
  const want = treeChecksums(tree);
  const files = listFiles(tree);
  tt.comment(`tree: ${files.length} files, ${bytes} bytes`);

  const arr = await createArray({ dir, name: 'fs', memberSize: '129M' });
  const server = await serveArray(tt, arr);
  const mnt = path.join(dir, 'mnt');
  const first = await mountNbdfuse(tt, server.uri(), mnt, { mkfs: 'ext4' });

  const third = Math.ceil(files.length / 3);
  await copyFiles(files.slice(0, third), tree, mnt);
  // Files are written, each fsynced, for as long as the fail takes (at least the second part).
  let failing = true;
  const during: string[] = [];
  const copying = (async () => {
    await copyFiles(files.slice(third, 2 * third), tree, mnt, true);
    during.push(...files.slice(third, 2 * third));
    for (let i = 0; failing && i < 1000; i++) {
      const f = files[i % files.length];
      const copy = path.join('extra', `${i}-${path.basename(f)}`);
      await fs.promises.mkdir(path.join(mnt, 'extra'), { recursive: true });
      await fs.promises.copyFile(path.join(tree, f), path.join(mnt, copy));
      want[copy] = want[f];
      during.push(copy);
    }
  })();
  const fail = await arr.cli('fail', arr.name, '--member', '2').finally(() => { failing = false; });
  await copying;
  tt.match(fail.stdout, /member 2 .*failed by the serving process/, 'member 2 failed by the serving controller');
  tt.comment(`${during.length} files written while the fail ran`);
  await copyFiles(files.slice(2 * third), tree, mnt);
  await runTool('sync', ['-f', mnt]);
  const st = await arr.json<{ slots: string; state: string }>('status', arr.name);
  tt.same([st.slots, st.state], ['UU_UU', 'degraded'], 'the array runs degraded');
  tt.same(treeChecksums(mnt), want, 'files read back equal while mounted');
  await first.unmount();

  const check = await mountNbdfuse(tt, server.uri(), mnt, { attachOnly: true });
  const fsck = await runTool('e2fsck', ['-f', '-n', check.loop], { allowFailure: true, timeoutMs: 120_000 });
  tt.equal(fsck.code, 0, `e2fsck -f -n finds the file system clean\n${fsck.stdout}${fsck.stderr}`);
  await check.unmount();

  const again = await mountNbdfuse(tt, server.uri(), mnt, { readOnly: true });
  tt.same(treeChecksums(mnt), want, 'after remount every file has its checksum');
  await again.unmount();
  tt.notOk(fs.readFileSync('/proc/mounts', 'utf8').includes(dir), 'nothing is left mounted');
});
