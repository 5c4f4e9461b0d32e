// nbdcopy round trip through `nbdraid serve --file` with multi-conn: random data (with zero
// runs, which nbdcopy sends as WRITE_ZEROES) uploaded over 4 connections, downloaded over 4,
// checksums equal at every step; libnbd's debug trace proves 4 handles really connected.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { sha256File } from '../helpers/file-tree.js';
import { runTool } from '../../harness/run-tool.js';
import { startNbdraid } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';

const SIZE = 256 << 20;
const MiB = 1 << 20;

/** Random data with two long zero runs and random bytes in the last MiB. */
function writeSource(file: string): void {
  const fd = fs.openSync(file, 'w');
  const random = (offset: number, length: number): void => {
    for (let done = 0; done < length; done += 8 * MiB) {
      fs.writeSync(fd, randomBytes(Math.min(8 * MiB, length - done)), 0, undefined, offset + done);
    }
  };
  random(0, 64 * MiB);
  random(96 * MiB, 64 * MiB);
  random(SIZE - MiB, MiB);
  fs.ftruncateSync(fd, SIZE);
  fs.closeSync(fd);
}

/** Handles libnbd reports as connected ("dst2: nbd_connect_uri: leave: ret=0"). */
function connectedHandles(trace: string, side: 'src' | 'dst'): string[] {
  const re = new RegExp(`(${side}\\d+): nbd_connect_uri: leave: ret=0`, 'g');
  return [...new Set([...trace.matchAll(re)].map((m) => m[1]))].sort();
}

const dir = tempDir(t);

t.test('nbdcopy up and down over 4 connections keeps every byte', async (tt) => {
  const source = path.join(dir, 'source.img');
  writeSource(source);
  const want = sha256File(source);
  const backing = sparseImage(dir, 'export.img', SIZE);
  const server = await startNbdraid(tt, { file: backing, exportName: 'copy' });
  const info = JSON.parse((await runTool('nbdinfo', ['--json', server.uri()])).stdout);
  tt.equal(info.exports[0].can_multi_conn, true, 'the export advertises multi-conn');

  const up = await runTool('nbdcopy', ['-v', '--connections=4', '--threads=4', '--flush', source, server.uri()], { timeoutMs: 120_000 });
  tt.match(up.stderr, /connections=4/, 'nbdcopy chose 4 connections for the upload');
  tt.same(connectedHandles(up.stderr, 'dst'), ['dst0', 'dst1', 'dst2', 'dst3'], '4 NBD connections opened for the upload');
  tt.equal(sha256File(backing), want, 'the served file holds exactly the uploaded bytes');

  const back = path.join(dir, 'back.img');
  const down = await runTool('nbdcopy', ['-v', '--connections=4', '--threads=4', server.uri(), back], { timeoutMs: 120_000 });
  tt.same(connectedHandles(down.stderr, 'src'), ['src0', 'src1', 'src2', 'src3'], '4 NBD connections opened for the download');
  tt.equal(fs.statSync(back).size, SIZE, 'downloaded image has the export size');
  tt.equal(sha256File(back), want, 'the downloaded bytes equal the source');
  tt.equal(await server.stop(), 0, 'the server exits cleanly on SIGTERM');
});

t.test('nbdcopy between two nbdraid servers', async (tt) => {
  const a = sparseImage(dir, 'a.img', SIZE);
  const fd = fs.openSync(a, 'r+');
  fs.writeSync(fd, randomBytes(16 * MiB), 0, undefined, 3 * MiB + 512);
  fs.closeSync(fd);
  const from = await startNbdraid(tt, { file: a, exportName: 'from', readOnly: true });
  const b = sparseImage(dir, 'b.img', SIZE);
  const to = await startNbdraid(tt, { file: b, exportName: 'to' });
  await runTool('nbdcopy', ['--connections=4', '--threads=4', '--flush', from.uri(), to.uri()], { timeoutMs: 120_000 });
  tt.equal(sha256File(b), sha256File(a), 'export to export copy is exact');
});
