import t from 'tap';
import { parseSize, formatBytes, progressBar, table, formatDuration } from '../cmd/format.js';

t.test('parseSize', async (t) => {
  t.equal(parseSize('512K'), 512 * 1024);
  t.equal(parseSize('1G'), 2 ** 30);
  t.equal(parseSize('2GiB'), 2 ** 31);
  t.equal(parseSize('4096'), 4096);
  t.equal(parseSize('1.5M'), 1.5 * 2 ** 20);
  t.throws(() => parseSize('12Q', '--size'), { code: 'EINVAL', message: /^--size: '12Q' is not a size/ });
  t.throws(() => parseSize('0.3K'), { code: 'EINVAL' });
});

t.test('formatting', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(3 * 2 ** 30), '3.00 GiB');
  t.equal(progressBar(0, 10), '[>.........]');
  t.equal(progressBar(0.5, 10), '[=====>....]');
  t.equal(progressBar(1, 10), '[==========]');
  t.equal(formatDuration(90), '1.5min');
  t.equal(table(['a', 'bb'], [['xxx', 1]]), 'a    bb\nxxx  1');
});
