import t from 'tap';
import { NbdraidError, asNbdraidError } from '../lib/errors.js';

t.test('NbdraidError carries code and context prefix', async (t) => {
  const e = new NbdraidError('EINVAL', 'geometry', 'chunk must be a power of two');
  t.equal(e.code, 'EINVAL');
  t.equal(e.message, 'geometry: chunk must be a power of two');
  t.ok(e instanceof Error);
});

t.test('asNbdraidError keeps known errno codes, falls back otherwise', async (t) => {
  const enospc = Object.assign(new Error('no space'), { code: 'ENOSPC' });
  t.equal(asNbdraidError(enospc, 'member 2').code, 'ENOSPC');
  t.equal(asNbdraidError(enospc, 'member 2').message, 'member 2: no space');
  t.equal(asNbdraidError(new Error('weird'), 'x').code, 'EIO');
  const same = new NbdraidError('EPERM', 'a', 'b');
  t.equal(asNbdraidError(same, 'c'), same);
});
