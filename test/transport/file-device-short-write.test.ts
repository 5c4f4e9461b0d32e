// Short writes through the real kernel: pwrite may write fewer bytes than asked. FileDevice must
// retry the rest, and fail the write as an error when the rest cannot be written; a short write
// is never counted as written. Made two ways: RLIMIT_FSIZE (the kernel writes up to the limit
// and returns the count; past it, EFBIG) and strace's syscall injection (pwrite returns 0 having
// written nothing, once or every time).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runTool, toolPath } from '../../harness/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'workers', 'file-write.js');
const SIZE = 1 << 20;

interface Outcome { ok: boolean; code?: string; message?: string }

async function writeUnder(prefix: string[], file: string, offset: number, length: number, byte: number): Promise<Outcome> {
  // A clean environment: the test runner's preloads catch SIGXFSZ, which Node itself ignores.
  const args = ['-i', `PATH=${toolPath()}`, ...prefix, process.execPath, child, file, String(offset), String(length), String(byte)];
  const r = await runTool('env', args, { timeoutMs: 20_000 });
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Outcome;
}

function image(dir: string, name: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.alloc(SIZE, 0xaa));
  return p;
}

t.test('a write crossing RLIMIT_FSIZE: the kernel writes a prefix, the rest fails; the write is an error', async (t) => {
  const dir = tempDir(t);
  // Sizes on both sides of 64 KiB: small writes are synchronous on the event loop, large ones in the thread pool.
  for (const length of [8192, 256 * 1024]) {
    const file = image(dir, `m-${length}`);
    const limit = 4096 + Math.floor(length / 2) + 123; // not sector aligned
    const out = await writeUnder(['prlimit', `--fsize=${limit}`], file, 4096, length, 0x55);
    t.equal(out.ok, false, `${length}: not acknowledged`);
    t.equal(out.code, 'ENOSPC', `${length}: EFBIG reported as ENOSPC (${out.message})`);
    t.match(out.message ?? '', /^write .* at 4096: /, `${length}: the message names the file and offset`);
    const now = fs.readFileSync(file);
    t.ok(now.subarray(4096, limit).every((b) => b === 0x55), `${length}: the prefix up to the limit reached the file (a torn write)`);
    t.ok(now.subarray(limit).every((b) => b === 0xaa), `${length}: nothing past the limit`);
  }
});

t.test('pwrite returning 0 once: retried, the whole write lands', async (t) => {
  const dir = tempDir(t);
  const file = image(dir, 'm');
  const out = await writeUnder(['strace', '-f', '-qq', '-o', '/dev/null', '-e', 'trace=pwrite64', '-e', 'inject=pwrite64:retval=0:when=1'], file, 8192, 16384, 0x66);
  t.same(out, { ok: true });
  const now = fs.readFileSync(file);
  t.ok(now.subarray(8192, 8192 + 16384).every((b) => b === 0x66), 'every byte written');
  t.ok(now.subarray(0, 8192).every((b) => b === 0xaa) && now.subarray(8192 + 16384).every((b) => b === 0xaa), 'nothing else');
});

t.test('pwrite returning 0 every time: the write fails with EIO instead of spinning', async (t) => {
  const dir = tempDir(t);
  const file = image(dir, 'm');
  const out = await writeUnder(['strace', '-f', '-qq', '-o', '/dev/null', '-e', 'trace=pwrite64', '-e', 'inject=pwrite64:retval=0:when=1+'], file, 8192, 16384, 0x66);
  t.equal(out.ok, false, 'not acknowledged');
  t.equal(out.code, 'EIO');
  t.match(out.message ?? '', /^write .* at 8192: /);
});
