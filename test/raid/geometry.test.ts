import t from 'tap';
import { Geometry, LAYOUTS, type LayoutName } from '../../lib/raid/geometry.js';
import { rejectsWith } from './util.js';

const C = 4096;
const geo = (layout: LayoutName, members = 4, stripes = 64, chunk = C) =>
  new Geometry({ members, chunk, layout, dataOffset: 1 << 20, stripes });

t.test('left-symmetric vectors from raid5-reference.md (n = 4)', async (t) => {
  const g = geo('left-symmetric');
  const vectors: [number, number, number, number][] = [
    [0, 0, 0, 3], [2, 0, 2, 3], [3, 1, 3, 2], [4, 1, 0, 2], [5, 1, 1, 2],
    [6, 2, 2, 1], [8, 2, 0, 1], [9, 3, 1, 0], [12, 4, 0, 3],
  ];
  for (const [chunk, stripe, disk, parity] of vectors) {
    const loc = g.locate(chunk * C + 17);
    t.same([loc.stripe, loc.disk, loc.parityDisk], [stripe, disk, parity], `chunk ${chunk}`);
    t.equal(loc.offsetInChunk, 17);
    t.equal(loc.memberByte, (1 << 20) + stripe * C + 17);
  }
});

t.test('left-asymmetric vectors (n = 4)', async (t) => {
  const g = geo('left-asymmetric');
  const a = g.locate(3 * C);
  t.same([a.stripe, a.disk, a.parityDisk], [1, 0, 2]);
  const b = g.locate(5 * C);
  t.same([b.stripe, b.disk, b.parityDisk], [1, 3, 2]);
});

t.test('right layouts put parity on stripe mod n', async (t) => {
  for (const layout of ['right-asymmetric', 'right-symmetric'] as LayoutName[]) {
    const g = geo(layout, 5);
    for (let s = 0; s < 12; s++) t.equal(g.parityDisk(s), s % 5, `${layout} stripe ${s}`);
  }
  const rs = geo('right-symmetric', 4);
  t.equal(rs.dataDisk(1, 0), 2, 'right-symmetric: data follows parity');
  const ra = geo('right-asymmetric', 4);
  t.equal(ra.dataDisk(1, 0), 0, 'right-asymmetric: data skips parity');
});

t.test('inverse mapping over a matrix of members x layouts x chunks', async (t) => {
  let checked = 0;
  for (const layout of Object.keys(LAYOUTS) as LayoutName[]) {
    for (let n = 3; n <= 7; n++) {
      for (const chunk of [4096, 65536, 524288]) {
        const g = geo(layout, n, 3 * n, chunk);
        t.equal(g.size, 3 * n * (n - 1) * chunk);
        for (let s = 0; s < g.stripes; s++) {
          const seen = new Set<number>([g.parityDisk(s)]);
          for (let d = 0; d < n - 1; d++) {
            const disk = g.dataDisk(s, d);
            seen.add(disk);
            if (g.dataIndex(s, disk) !== d) t.fail(`${layout} n=${n} s=${s} d=${d}`);
            const off = s * g.stripeData + d * chunk + 123;
            const loc = g.locate(off);
            if (loc.disk !== disk || loc.stripe !== s || g.volumeOffset(s, disk, 123) !== off) t.fail(`inverse ${layout} ${n} ${s} ${d}`);
            const back = g.fromMemberByte(loc.memberByte);
            if (back?.stripe !== s || back.offsetInChunk !== 123) t.fail('member byte inverse');
            checked++;
          }
          if (seen.size !== n) t.fail(`${layout} n=${n} stripe ${s}: members not a permutation`);
          t.equal(g.dataIndex(s, g.parityDisk(s)), -1);
          t.equal(g.volumeOffset(s, g.parityDisk(s), 0), -1);
        }
      }
    }
  }
  t.ok(checked > 1000, `${checked} data chunks mapped both ways`);
});

t.test('bad geometry is refused with EINVAL', async (t) => {
  const bad = [
    { members: 2, chunk: C, layout: 'left-symmetric' as LayoutName, dataOffset: 0, stripes: 1 },
    { members: 3, chunk: 6144, layout: 'left-symmetric' as LayoutName, dataOffset: 0, stripes: 1 },
    { members: 3, chunk: 2048, layout: 'left-symmetric' as LayoutName, dataOffset: 0, stripes: 1 },
    { members: 3, chunk: C, layout: 'diagonal' as LayoutName, dataOffset: 0, stripes: 1 },
    { members: 3, chunk: C, layout: 'left-symmetric' as LayoutName, dataOffset: 0, stripes: 0 },
  ];
  for (const p of bad) {
    await rejectsWith(t, () => new Geometry(p), 'EINVAL', 'geometry:', JSON.stringify(p));
  }
});
