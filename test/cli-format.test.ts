import t from 'tap';
import { formatBytes, progressBar, table, formatDuration } from '../cmd/format.js';

t.test('formatting', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(3 * 2 ** 30), '3.00 GiB');
  t.equal(progressBar(0, 10), '[>.........]');
  t.equal(progressBar(0.5, 10), '[=====>....]');
  t.equal(progressBar(1, 10), '[==========]');
  t.equal(formatDuration(90), '1.5min');
  t.equal(table(['a', 'bb'], [['xxx', 1]]), 'a    bb\nxxx  1');
});
