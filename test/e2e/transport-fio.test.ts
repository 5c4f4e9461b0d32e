// fio's nbd engine with scripts/fio/verify.fio against `nbdraid serve --file`: 4 jobs, each
// on its own connection, random-write crc32c-tagged blocks of mixed sizes and verify them;
// a second, verify-only run on new connections finds the same data; and the same verify-only
// run against an empty export fails, so the check is known to bite.
import t from 'tap';
import path from 'node:path';
import { runFio } from '../../harness/fio.js';
import { startNbdraid } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';

const SIZE = 256 << 20;
const JOBS = 4;
const JOB_SIZE = 32 << 20;

const env = (uri: string, verifyOnly: boolean): Record<string, string> => ({
  NBD_URI: uri, FIO_JOBS: String(JOBS), FIO_JOB_SIZE: String(JOB_SIZE), FIO_VERIFY_ONLY: verifyOnly ? '1' : '0',
});

const dir = tempDir(t);

t.test('randwrite then verify (crc32c), 4 jobs over TCP', async (tt) => {
  const server = await startNbdraid(tt, { file: sparseImage(dir, 'a.img', SIZE), exportName: 'fio' });
  const run = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), false) });
  tt.equal(run.jobs.length, 1, 'one group report');
  tt.equal(run.jobs[0].error, 0, 'fio reports no error');
  tt.equal(run.jobs[0].write.io_bytes, JOBS * JOB_SIZE, 'every job wrote its whole region');
  tt.equal(run.jobs[0].read.io_bytes, JOBS * JOB_SIZE, 'every written byte was read back and verified');

  const again = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), true) });
  tt.equal(again.jobs[0].error, 0, 'verify-only on new connections passes');
  tt.equal(again.jobs[0].read.io_bytes, JOBS * JOB_SIZE, 'verify-only read everything');
  tt.equal(await server.stop(), 0, 'the server exits cleanly on SIGTERM');
});

t.test('verify-only against an empty export fails', async (tt) => {
  const server = await startNbdraid(tt, { file: sparseImage(dir, 'b.img', SIZE), exportName: 'empty' });
  const run = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), true), allowFailure: true });
  tt.equal(run.failed, true, 'fio reports verification failures on data never written');
});

t.test('randwrite then verify over a unix socket', async (tt) => {
  const socket = path.join(dir, 'fio.sock');
  const server = await startNbdraid(tt, { file: sparseImage(dir, 'c.img', SIZE), exportName: 'fio', socket });
  const run = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), false) });
  tt.equal(run.jobs[0].error, 0, 'fio reports no error');
  tt.equal(run.jobs[0].read.io_bytes, JOBS * JOB_SIZE, 'everything verified');
});
