// fio's nbd engine with scripts/fio/verify.fio against a served 4+1 RAID-5 array (512 KiB chunk):
// 4 jobs on their own connections random-write crc32c-tagged blocks of 4-128 KiB (partial-stripe
// writes: read-modify-write and reconstruct-write) and verify them; verify-only runs on new
// connections find the same data with all members, after `nbdraid fail --member 2` (reads
// reconstructed from parity), and after the controller is restarted on the degraded array.
// A verify-only run against a fresh array fails, so the check is known to bite.
import t from 'tap';
import { runFio } from '../../harness/fio.js';
import { createArray, serveArray } from '../../harness/raid-array.js';
import { tempDir } from '../helpers/temp-dir.js';

const JOBS = 4;
const JOB_SIZE = 32 << 20;

const env = (uri: string, verifyOnly: boolean): Record<string, string> => ({
  NBD_URI: uri, FIO_JOBS: String(JOBS), FIO_JOB_SIZE: String(JOB_SIZE), FIO_VERIFY_ONLY: verifyOnly ? '1' : '0',
});

t.test('fio crc32c verify on a 4+1 array: optimal, degraded, after restart', async (tt) => {
  const arr = await createArray({ dir: tempDir(tt, 'nbdraid-raid-fio-'), name: 'fio', memberSize: '65M' });
  let server = await serveArray(tt, arr);

  const run = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), false) });
  tt.equal(run.jobs[0].error, 0, 'fio reports no error');
  tt.equal(run.jobs[0].write.io_bytes, JOBS * JOB_SIZE, 'every job wrote its whole region');
  tt.equal(run.jobs[0].read.io_bytes, JOBS * JOB_SIZE, 'every written byte was read back and verified');

  const again = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), true) });
  tt.equal(again.jobs[0].read.io_bytes, JOBS * JOB_SIZE, 'verify-only on new connections passes');

  const f = await arr.cli('fail', arr.name, '--member', '2');
  tt.match(f.stdout, /member 2 .*failed by the serving process/, 'member 2 failed while served');
  const st = await arr.json<{ slots: string; state: string }>('status', arr.name);
  tt.same([st.slots, st.state], ['UU_UU', 'degraded'], 'status shows the array degraded');
  const degraded = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), true) });
  tt.equal(degraded.jobs[0].read.io_bytes, JOBS * JOB_SIZE, 'verify-only passes degraded (reads reconstructed)');

  tt.equal(await server.stop(), 0, 'controller stops cleanly');
  server = await serveArray(tt, arr);
  const restarted = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), true) });
  tt.equal(restarted.jobs[0].read.io_bytes, JOBS * JOB_SIZE, 'verify-only passes after re-assembling degraded');
});

t.test('verify-only against a fresh array fails', async (tt) => {
  const arr = await createArray({ dir: tempDir(tt, 'nbdraid-raid-fio-'), name: 'empty', memberSize: '65M' });
  const server = await serveArray(tt, arr);
  const run = await runFio({ jobFile: 'verify.fio', env: env(server.uri(), true), allowFailure: true });
  tt.equal(run.failed, true, 'fio reports verification failures on data never written');
});
