import t from 'tap';
import { Geometry } from '../../lib/raid/geometry.js';
import { planRange, planRegions, regionStripes } from '../../lib/controller/plans.js';

t.test('regions are ~32 MiB of data, power of two stripes', async (t) => {
  const g = new Geometry({ members: 5, chunk: 512 << 10, layout: 'left-symmetric', dataOffset: 1 << 20, stripes: 2048 });
  t.equal(regionStripes(g), 16, '4 x 512 KiB = 2 MiB per stripe -> 16 stripes');
  const tiny = new Geometry({ members: 3, chunk: 4096, layout: 'left-symmetric', dataOffset: 1 << 20, stripes: 10 });
  t.equal(regionStripes(tiny), 4096);
  const huge = new Geometry({ members: 3, chunk: 64 << 20, layout: 'left-symmetric', dataOffset: 1 << 20, stripes: 10 });
  t.equal(regionStripes(huge), 1, 'never below one stripe');
});

t.test('planRange covers every stripe once, aligned to regions', async (t) => {
  for (const [stripes, per] of [[2048, 16], [1000, 16], [5, 4096], [64 * 16 * 3 + 7, 16]]) {
    const parts = planRange(stripes, per, { x: 1 });
    t.equal(parts[0].stripeStart, 0);
    t.equal(parts[parts.length - 1].stripeEnd, stripes);
    for (let i = 1; i < parts.length; i++) t.equal(parts[i].stripeStart, parts[i - 1].stripeEnd);
    for (const p of parts) t.equal(p.stripeStart % per, 0);
    t.ok(parts.length <= 64);
    t.same(parts[0].instructions, { x: 1 });
  }
});

t.test('planRegions groups runs of dirty regions', async (t) => {
  const parts = planRegions([7, 3, 4, 5, 9, 4, 1000], 160, 16);
  t.same(parts.map((p) => [p.stripeStart, p.stripeEnd]), [[48, 96], [112, 128], [144, 160]]);
});
