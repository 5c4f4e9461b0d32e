// nbdsh (libnbd in Python, strict mode off) sends requests a correct client never would:
// out of range, zero-length, oversized, misaligned, unknown commands and flags, bad magic.
// Each must get exactly the errno nbd-protocol.md tabulates, and the same connection must then
// still serve a read. The probes live in nbdsh-probes.py; the expectations live here.
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { runTool } from '../../harness/run-tool.js';
import { repoRoot, startNbdraid, type ServerProcess } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';

const EPERM = 1;
const EINVAL = 22;
const ENOSPC = 28;
const EOVERFLOW = 75;
const SIZE = 256 << 20;

const RW_EXPECTED: Record<string, number> = {
  'read past end': EINVAL,
  'read across end': EINVAL,
  'read offset wraps 2^64': EINVAL,
  'write past end': ENOSPC,
  'write across end': ENOSPC,
  'write zeroes past end': ENOSPC,
  'trim past end': EINVAL,
  'block status past end': EINVAL,
  'read zero-length': EINVAL,
  'write zero-length': EINVAL,
  'trim zero-length': EINVAL,
  'write zeroes zero-length': EINVAL,
  'read over maximum': EOVERFLOW,
  // A WRITE over the maximum is refused, its payload read and dropped so the stream stays in sync.
  'write over maximum': EINVAL,
  // TRIM carries no payload and costs no more when large: served, not refused.
  'trim over maximum': 0,
  'read unknown flag 0x40': EINVAL,
  'read with REQ_ONE': EINVAL,
  'write with DF': EINVAL,
  'trim with NO_HOLE': EINVAL,
  // The spec: with SEND_FUA negotiated the server MUST accept FUA on every command.
  'read with FUA': 0,
  'read with DF, one chunk': 0,
  'block status without a context': EINVAL,
  'unknown command 99': EINVAL,
};

const RO_EXPECTED: Record<string, number> = {
  'write on read-only': EPERM,
  'trim on read-only': EPERM,
  'write zeroes on read-only': EPERM,
};

interface ProbeResult {
  probe: string;
  errno?: number;
  outcome?: string;
  next: string;
}

async function runProbes(server: ServerProcess, set: 'rw' | 'ro', exportName: string): Promise<ProbeResult[]> {
  const script = path.join(repoRoot, 'test/e2e/nbdsh-probes.py');
  const r = await runTool('nbdsh', ['--base-allocation', '-u', server.uri(), '-c', `exec(open(${JSON.stringify(script)}).read())`], {
    env: { PROBE_SET: set, PROBE_PORT: String(server.port), PROBE_EXPORT: exportName },
    timeoutMs: 60_000,
  });
  return r.stdout.trim().split('\n').map((line) => JSON.parse(line) as ProbeResult);
}

function checkErrnos(tt: Test, results: ProbeResult[], expected: Record<string, number>): void {
  for (const r of results) {
    if (!(r.probe in expected)) continue;
    tt.equal(r.errno, expected[r.probe], `${r.probe}: errno ${expected[r.probe]}`);
    tt.equal(r.next, 'ok', `${r.probe}: the next read on the same connection is served`);
  }
  const seen = new Set(results.map((r) => r.probe));
  tt.same(Object.keys(expected).filter((name) => !seen.has(name)), [], 'every expected probe ran');
}

function head(file: string, bytes: number): Buffer {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(bytes);
  fs.readSync(fd, buf, 0, bytes, 0);
  fs.closeSync(fd);
  return buf;
}

const dir = tempDir(t);

t.test('read-write export: range, length, flag and command errors', async (tt) => {
  const file = sparseImage(dir, 'rw.img', SIZE);
  const server = await startNbdraid(tt, { file, exportName: 'probe' });
  const results = await runProbes(server, 'rw', 'probe');
  checkErrnos(tt, results, RW_EXPECTED);
  const magic = results.find((r) => r.probe === 'bad request magic');
  tt.equal(magic?.outcome, 'closed', 'a bad request magic drops that connection');
  tt.equal(magic?.next, 'ok', 'other connections are still served after a bad magic');
  const minimum = await runTool('nbdinfo', ['--json', server.uri()]).then((r) => JSON.parse(r.stdout).exports[0].block_size_minimum);
  // Misalignment probes run only where the export's minimum block size exceeds 1 byte.
  tt.equal(minimum, 1, 'a file export accepts any byte alignment (minimum block size 1)');
  tt.equal(fs.statSync(file).size, SIZE, 'refused writes past the end did not grow the file');
});

t.test('export with a 512-byte minimum block size: misaligned requests get EINVAL', async (tt) => {
  const file = sparseImage(dir, 'aligned.img', SIZE);
  const server = await startNbdraid(tt, { file, exportName: 'aligned', blockSize: 512 });
  const minimum = await runTool('nbdinfo', ['--json', server.uri()]).then((r) => JSON.parse(r.stdout).exports[0].block_size_minimum);
  tt.equal(minimum, 512, 'the export advertises the 512-byte minimum');
  checkErrnos(tt, await runProbes(server, 'rw', 'aligned'), {
    'read misaligned offset': EINVAL,
    'read misaligned length': EINVAL,
    'write misaligned': EINVAL,
  });
});

t.test('read-only export: writes, trims and zeroes get EPERM', async (tt) => {
  const file = sparseImage(dir, 'ro.img', SIZE);
  fs.writeFileSync(file, Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256)), { flag: 'r+' });
  const before = head(file, 8192);
  const server = await startNbdraid(tt, { file, exportName: 'ro', readOnly: true });
  checkErrnos(tt, await runProbes(server, 'ro', 'ro'), RO_EXPECTED);
  tt.ok(head(file, 8192).equals(before), 'the file is unchanged');
});
