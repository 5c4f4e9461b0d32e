// Migration geometry and partition plan: two explicit geometries, partitions in destination
// order with the member sectors each reads and writes (worked out by hand for a 3 -> 4 grow),
// md's new_offset choice, and the refusals.
import t from 'tap';
import { Geometry } from '../../lib/raid/geometry.js';
import { migrationGeometry } from '../../lib/raid/migration-geometry.js';
import { planMigration } from '../../lib/raid/migration-offset.js';
import { checkOrderable, criticalPartitions, dependencies } from '../../lib/raid/migration-order.js';
import { partitionUnit, planPartitions } from '../../lib/raid/migration-plan.js';
import { rejectsWith } from './util.js';

const K = 1024;
const MIB = 1 << 20;
const src = new Geometry({ members: 3, chunk: 4 * K, layout: 'left-symmetric', dataOffset: MIB, stripes: 12 });

t.test('grow 3 -> 4: partitions, stripes and member sectors', async (t) => {
  const mg = migrationGeometry(src, { members: 4 });
  t.equal(mg.destination.stripes, 12, 'md keeps the per-member size: 12 rows of 4K');
  t.equal(mg.destination.size, 144 * K);
  t.equal(partitionUnit(mg), 24 * K, 'lcm of 8K and 12K stripes');
  const plan = planPartitions(mg);
  t.equal(plan.partitions.length, 6);
  const [p0, , , , p4] = plan.partitions;
  t.same(p0.volume, { lo: 0, hi: 24 * K });
  t.same(p0.sourceStripes, { first: 0, end: 3 });
  t.same(p0.destinationStripes, { first: 0, end: 2 });
  t.same(p0.reads, [0, 1, 2].map((member) => ({ member, first: 2048, end: 2072 })), 'reads 3 rows on each of 3 members');
  t.same(p0.writes, [0, 1, 2, 3].map((member) => ({ member, first: 2048, end: 2064 })), 'writes 2 rows on each of 4 members');
  t.same(p4.volume, { lo: 96 * K, hi: 120 * K });
  t.equal(p4.sourceStripes, null, 'past the old end: new space');
  t.same(p4.reads, []);
  t.same(p4.destinationStripes, { first: 8, end: 10 });
  const deps = dependencies(plan);
  t.same(deps[0], [0], 'partition 0 overlaps only its own source');
  t.same(deps[1], [0, 1], 'partition 1 writes rows 2-3: source of partitions 0 and 1 (itself)');
  t.same(deps[3], [2], 'rows 6-7: source of partition 2 (rows 6-8)');
  t.same(criticalPartitions(plan), [0, 1], 'the first partitions write over their own source');
});

t.test('new_offset: room before the data moves the destination down; no partition is critical', async (t) => {
  const plan = planMigration(src, { members: 4 }, { room: { lowest: 8192, memberBytes: 2 * MIB } });
  t.equal(plan.direction, 'forwards');
  t.equal(plan.geometry.destination.dataOffset, MIB - 8 * K, 'partition 0 writes 16 sectors past its source start: 8K down');
  t.equal(plan.geometry.source.dataOffset, MIB, 'the source stays');
  t.same(criticalPartitions(plan), []);
  t.ok(dependencies(plan).every((ds, p) => ds.every((q) => q < p)), 'each depends only on earlier ones');
});

t.test('new_offset: no room before but room after: the destination moves up and runs backwards', async (t) => {
  const plan = planMigration(src, { members: 4 }, { room: { lowest: MIB, memberBytes: 2 * MIB } });
  t.equal(plan.direction, 'backwards');
  t.equal(plan.geometry.destination.dataOffset, MIB + 24 * K, 'partition 3 writes from row 6 but its source ends at row 12: 6 rows up');
  t.same(criticalPartitions(plan), []);
  t.ok(dependencies(plan).every((ds, p) => ds.every((q) => q > p)), 'each depends only on later ones');
});

t.test('no room at all: the offset stays, and the plan says which partitions are critical', async (t) => {
  const plan = planMigration(src, { members: 4 }, { room: { lowest: MIB, memberBytes: MIB + 48 * K } });
  t.equal(plan.geometry.destination.dataOffset, MIB);
  t.same(criticalPartitions(plan), [0, 1]);
});

t.test('chunk and layout changes: partitions hold whole stripes of both', async (t) => {
  const s = new Geometry({ members: 4, chunk: 512 * K, layout: 'left-symmetric', dataOffset: 8 * MIB, stripes: 4 });
  const plan = planMigration(s, { chunk: 64 * K, layout: 'right-asymmetric' }, { partitionBytes: 2 * MIB });
  t.equal(plan.partitionBytes, 3 * MIB, 'one 1.5M source stripe is the unit; rounded up to 2 units');
  t.equal(plan.partitions.length, 2);
  t.same(plan.partitions[1].sourceStripes, { first: 2, end: 4 });
  t.same(plan.partitions[1].destinationStripes, { first: 16, end: 32 });
  t.same(criticalPartitions(plan), [0, 1], 'the same rows: each overlaps its own source');
  t.same(dependencies(plan), [[0], [1]]);
});

t.test('onto new devices every partition is independent', async (t) => {
  const plan = planMigration(src, { members: 5, chunk: 8 * K }, { placement: 'new-devices' });
  t.same(dependencies(plan), plan.partitions.map(() => []));
  t.same(criticalPartitions(plan), []);
});

t.test('a destination that outruns its source: md-resumable cannot order it and says so', async (t) => {
  const five = new Geometry({ members: 5, chunk: 4 * K, layout: 'left-symmetric', dataOffset: MIB, stripes: 12 });
  const plan = planMigration(five, { members: 4, usedBytes: 64 * K });
  t.same(dependencies(plan), [[0, 1], [1, 2], [2, 3], []], 'each partition writes over the next one\'s source');
  t.doesNotThrow(() => checkOrderable(plan, dependencies(plan), 'overlapped-complete'), 'overlapped-complete runs it from the last partition down');
  await rejectsWith(t, () => checkOrderable(plan, dependencies(plan), 'md-resumable'), 'EINVAL', 'migration: partitions 0, 1, 2 wait on each other in place');
});

t.test('refusals', async (t) => {
  await rejectsWith(t, () => migrationGeometry(src, { chunk: 8 * K, usedBytes: 44 * K }), 'ENOSPC', 'migration: 3 members, 8K chunk, left-symmetric holds 80K, less than');
  await rejectsWith(t, () => migrationGeometry(src, { members: 3 }), 'EINVAL', 'migration: the array already is 3 members, 4K chunk, left-symmetric; nothing to change');
  await rejectsWith(t, () => migrationGeometry(src, { chunk: 3000 }), 'EINVAL', 'geometry: chunk must be a power of two');
});
