// qemu's NBD client against `nbdraid serve --file`: qemu-img info and map, and qemu-io pattern
// writes and reads at offsets that straddle 64 KiB and 512 KiB chunk boundaries (aligned,
// sector-unaligned and byte-unaligned), checked through qemu and directly in the served file.
import t from 'tap';
import fs from 'node:fs';
import { runJson, runTool } from '../../harness/run-tool.js';
import { startNbdraid } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';

const SIZE = 256 << 20;
const KiB = 1024;
const MiB = 1 << 20;

/** [offset, length, pattern byte]: every range crosses a 64 KiB or 512 KiB boundary. */
const WRITES: [number, number, number][] = [
  [512 * KiB - 4 * KiB, 8 * KiB, 0xa1],
  [MiB - 512, KiB, 0xb2],
  [3 * MiB - 1000, 3000, 0xc3],
  [8 * MiB - 256 * KiB, 1536 * KiB, 0xd4],
  [64 * KiB - 1, 2, 0xe5],
  [SIZE - 12 * KiB, 12 * KiB, 0xf6],
];

async function qemuIo(uri: string, commands: string[], allowFailure = false): Promise<{ code: number | null; out: string }> {
  const args = ['-f', 'raw', ...commands.flatMap((c) => ['-c', c]), uri];
  const r = await runTool('qemu-io', args, { allowFailure, timeoutMs: 60_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

function fileBytes(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(length);
  fs.readSync(fd, buf, 0, length, offset);
  fs.closeSync(fd);
  return buf;
}

const dir = tempDir(t);

t.test('qemu-img info and map', async (tt) => {
  const file = sparseImage(dir, 'info.img', SIZE);
  fs.writeFileSync(file, Buffer.alloc(64 * KiB, 1), { flag: 'r+' });
  const server = await startNbdraid(tt, { file, exportName: 'q' });
  const info = await runJson<Record<string, unknown>>('qemu-img', ['info', '--output=json', server.uri()]);
  tt.strictSame(info, { 'virtual-size': SIZE, filename: server.uri(), format: 'raw' }, 'qemu sees a raw 256 MiB disk');
  type MapEntry = { start: number; length: number; zero: boolean; data: boolean };
  const map = await runJson<MapEntry[]>('qemu-img', ['map', '--output=json', server.uri()]);
  tt.same(map.map(({ start, length, zero, data }) => ({ start, length, zero, data })), [
    { start: 0, length: 64 * KiB, zero: false, data: true },
    { start: 64 * KiB, length: SIZE - 64 * KiB, zero: true, data: false },
  ], 'qemu reads base:allocation: data, then one hole to the end');
});

t.test('qemu-io patterns at chunk-straddling offsets', async (tt) => {
  const file = sparseImage(dir, 'io.img', SIZE);
  const server = await startNbdraid(tt, { file, exportName: 'q' });
  const writes = WRITES.map(([o, l, p]) => `write -P 0x${p.toString(16)} ${o} ${l}`);
  const reads = WRITES.map(([o, l, p]) => `read -P 0x${p.toString(16)} ${o} ${l}`);
  // Neighbours stay zero: the byte before and after every written range.
  const edges = WRITES.flatMap(([o, l]) => [`read -P 0 ${o - 1} 1`, `read -P 0 ${o + l} 1`].filter((c) => !c.includes(` ${SIZE} `)));
  const r = await qemuIo(server.uri(), [...writes, 'flush', ...reads, ...edges]);
  tt.equal(r.code, 0, 'qemu-io reports no failed command');
  tt.notMatch(r.out, /verification failed/i, 'every pattern verified');
  tt.equal(r.out.match(/^read \d+\/\d+ bytes/gm)?.length, reads.length + edges.length, 'every read ran');

  // A fresh qemu-io process (a new connection) reads the same data back.
  const again = await qemuIo(server.uri(), reads);
  tt.equal(again.code, 0, 'patterns persist across connections');
  for (const [o, l, p] of WRITES) {
    tt.ok(fileBytes(file, o, l).equals(Buffer.alloc(l, p)), `served file holds 0x${p.toString(16)} at ${o}+${l}`);
  }

  const wrong = await qemuIo(server.uri(), [`read -P 0x77 ${WRITES[0][0]} ${WRITES[0][1]}`], true);
  tt.match(wrong.out, /Pattern verification failed/, 'a wrong pattern is detected (the check can fail)');
});

t.test('qemu-io write zeroes inside written data', async (tt) => {
  const file = sparseImage(dir, 'zero.img', SIZE);
  const server = await startNbdraid(tt, { file, exportName: 'q' });
  const base = 32 * MiB - 512 * KiB;
  const r = await qemuIo(server.uri(), [
    `write -P 0x3c ${base} ${MiB}`,
    `write -z ${base + 192 * KiB} ${512 * KiB}`,
    `read -P 0x3c ${base} ${192 * KiB}`,
    `read -P 0 ${base + 192 * KiB} ${512 * KiB}`,
    `read -P 0x3c ${base + 704 * KiB} ${320 * KiB}`,
  ]);
  tt.equal(r.code, 0, 'zeroed middle reads zero, both sides keep their pattern');
  tt.notMatch(r.out, /verification failed/i);
});
