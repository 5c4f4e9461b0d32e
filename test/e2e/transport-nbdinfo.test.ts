// nbdinfo against `nbdraid serve --file`: what the server advertises (exports, size, transmission
// flags, block sizes, metadata contexts) must be exactly what the device can do, over TCP and a
// unix socket; and --map must show base:allocation holes and data where they are in the file.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { runJson, runTool } from '../../harness/run-tool.js';
import { startNbdraid } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';

const SIZE = 256 << 20;

interface NbdinfoReport {
  protocol: string;
  TLS: boolean;
  structured: boolean;
  exports: Record<string, unknown>[];
}

/** nbdinfo guesses "content" by running file(1) over the first sectors; not a protocol fact. */
function withoutContent(e: Record<string, unknown>): Record<string, unknown> {
  const { content: _content, ...rest } = e;
  return rest;
}

const writable = {
  contexts: ['base:allocation'],
  is_rotational: false,
  is_read_only: false,
  can_cache: true,
  can_df: true,
  can_fast_zero: false,
  can_flush: true,
  can_fua: true,
  can_multi_conn: true,
  can_trim: true,
  can_zero: true,
  block_size_minimum: 1,
  block_size_preferred: 4096,
  block_size_maximum: 32 << 20,
  'export-size': SIZE,
  'export-size-str': '256M',
};

const dir = tempDir(t);

t.test('nbdinfo --json and --list --json over TCP', async (tt) => {
  const server = await startNbdraid(tt, { file: sparseImage(dir, 'a.img', SIZE), exportName: 'disk0' });
  const info = await runJson<NbdinfoReport>('nbdinfo', ['--json', server.uri()]);
  tt.same({ protocol: info.protocol, TLS: info.TLS, structured: info.structured },
    { protocol: 'newstyle-fixed', TLS: false, structured: true }, 'fixed newstyle, structured replies, no TLS');
  tt.equal(info.exports.length, 1);
  tt.strictSame(withoutContent(info.exports[0]), { 'export-name': 'disk0', uri: server.uri(), ...writable },
    'flags, size, block sizes and contexts exactly as the file can do');

  const list = await runJson<NbdinfoReport>('nbdinfo', ['--list', '--json', server.uri('')]);
  tt.equal(list.exports.length, 1, 'one export listed');
  tt.strictSame(withoutContent(list.exports[0]), { 'export-name': 'disk0', uri: server.uri('disk0'), ...writable },
    '--list reports the same export');

  const byDefault = await runJson<NbdinfoReport>('nbdinfo', ['--json', server.uri('')]);
  tt.equal(byDefault.exports[0]['export-size'], SIZE, 'the empty name reaches the default export');

  const unknown = await runTool('nbdinfo', ['--json', server.uri('no-such-export')], { allowFailure: true });
  tt.not(unknown.code, 0, 'an unknown export name is refused');
  tt.match(unknown.stderr, /unknown|not found|no such/i, 'nbdinfo says the export is unknown');
});

t.test('read-only export over a unix socket', async (tt) => {
  const socket = path.join(dir, 'nbd.sock');
  const server = await startNbdraid(tt, { file: sparseImage(dir, 'b.img', SIZE), exportName: 'ro', socket, readOnly: true });
  tt.match(server.uri(), /^nbd\+unix:\/\/\/ro\?socket=/);
  const info = await runJson<NbdinfoReport>('nbdinfo', ['--json', server.uri()]);
  tt.strictSame(withoutContent(info.exports[0]), {
    'export-name': 'ro', uri: server.uri(), ...writable,
    is_read_only: true, can_fua: false, can_trim: false, can_zero: false,
  }, 'read-only: no FUA, TRIM or WRITE_ZEROES advertised; FLUSH, CACHE, DF and multi-conn remain');
  const list = await runJson<NbdinfoReport>('nbdinfo', ['--list', '--json', server.uri('')]);
  tt.same(list.exports.map((e) => e['export-name']), ['ro'], '--list over the unix socket');
});

/** Writes `length` non-zero bytes at `offset` without extending the file. */
function putData(file: string, offset: number, length: number): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(length, 0x5a), 0, length, offset);
  fs.closeSync(fd);
}

t.test('nbdinfo --map shows base:allocation holes and data where they are', async (tt) => {
  const file = sparseImage(dir, 'sparse.img', SIZE);
  putData(file, 1 << 20, 128 << 10);
  putData(file, 200 * 65536, 64 << 10);
  putData(file, SIZE - 4096, 4096);
  const server = await startNbdraid(tt, { file, exportName: 'sparse' });
  type Extent = { offset: number; length: number; type: number; description: string };
  const hole = (offset: number, length: number): Extent => ({ offset, length, type: 3, description: 'hole,zero' });
  const data = (offset: number, length: number): Extent => ({ offset, length, type: 0, description: 'data' });
  const map = await runJson<Extent[]>('nbdinfo', ['--map', '--json', server.uri()]);
  tt.strictSame(map, [
    hole(0, 1 << 20), data(1 << 20, 128 << 10),
    hole((1 << 20) + (128 << 10), 200 * 65536 - (1 << 20) - (128 << 10)), data(200 * 65536, 64 << 10),
    hole(201 * 65536, SIZE - 4096 - 201 * 65536), data(SIZE - 4096, 4096),
  ], 'extents match the file exactly');

  // A write through NBD allocates; the map follows.
  await runTool('nbdsh', ['-u', server.uri(), '-c', `h.pwrite(b"x" * 65536, ${64 << 20})`]);
  const after = await runJson<Extent[]>('nbdinfo', ['--map', '--json', server.uri()]);
  tt.same(after.find((e) => e.offset <= 64 << 20 && e.offset + e.length > 64 << 20),
    data(64 << 20, 65536), 'the written range now reads as data');
  const total = after.reduce((s, e) => s + e.length, 0);
  tt.equal(total, SIZE, 'extents cover the whole export');
});
