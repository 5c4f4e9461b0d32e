// The copy engine on real member files: a small array filled with random data through the volume
// is migrated in place partition by partition, in a random order the predicate allows (grow
// 3 -> 4 with 64K -> 16K chunk and left-symmetric -> right-asymmetric; and a degraded 4 -> 5 read
// through parity reconstruction). Afterwards the members assemble in the destination geometry,
// every byte reads back as written (and with each member missing in turn, so parity is fresh),
// and the real mdadm --examine shows the new geometry with no reshape; midway it shows the
// reshape at the boundary reached. A critical partition is refused.
import t from 'tap';
import { assembleArray } from '../../lib/raid/assemble.js';
import type { LayoutName } from '../../lib/raid/geometry.js';
import { MemberSet, copyPartition } from '../../lib/raid/migration-copy.js';
import { planMigration } from '../../lib/raid/migration-offset.js';
import { criticalPartitions } from '../../lib/raid/migration-order.js';
import { migrateOffline } from '../../lib/raid/migration-run.js';
import { rng } from '../helpers/prng.js';
import { fileArray, fill, quietVolume, readAll, withoutSlot } from './fixture.js';
import { agree } from './mdadm-examine.js';
import { rejectsWith } from './util.js';

const K = 1024;
const MIB = 1 << 20;

interface Case { name: string; n: number; chunk: number; to: { members: number; chunk: number; layout: LayoutName }; missing?: number }

const cases: Case[] = [
  { name: 'grow 3 -> 4, 64K -> 16K, left-symmetric -> right-asymmetric', n: 3, chunk: 64 * K, to: { members: 4, chunk: 16 * K, layout: 'right-asymmetric' } },
  { name: 'degraded (slot 2 missing) grow 4 -> 5, 64K -> 32K, left-asymmetric', n: 4, chunk: 64 * K, to: { members: 5, chunk: 32 * K, layout: 'left-asymmetric' }, missing: 2 },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const memberBytes = 8 * MIB;
    const fx = await fileArray(t, c.n, memberBytes, { chunk: c.chunk, dataOffset: MIB, extra: 1 });
    const rand = rng(c.n * 1000 + c.chunk);
    const ref = Buffer.alloc(fx.meta.geometry().size);
    await fill(quietVolume(fx.meta, { trackClean: false }), ref, rand, 300, 256);
    const meta = c.missing === undefined ? fx.meta : withoutSlot(fx.meta, c.missing);
    const plan = planMigration(meta.geometry(), c.to, { partitionBytes: 512 * K, room: { lowest: 8192, memberBytes } });
    t.same(criticalPartitions(plan), [], 'room before the data: no critical partition');
    t.ok(plan.partitions.length >= 8, `${plan.partitions.length} partitions`);
    const added = { device: fx.handles[c.n].device, path: fx.paths[c.n] };
    const present = fx.paths.flatMap((p, i) => (i === c.missing ? [] : [i]));
    const order: number[] = [];
    let midway = false;
    await migrateOffline(meta, plan, [added], {
      pick: (ready) => ready[Math.floor(rand() * ready.length)],
      onPartition: async (i) => {
        order.push(i);
        if (order.length !== Math.floor(plan.partitions.length / 2)) return;
        for (const m of present) {
          const md = await agree(t, fx.paths[m], fx.handles[m]);
          if (m === 0) t.equal(parseInt(md["Reshape pos'n"], 10) > 0, true, `midway: reshape at ${md["Reshape pos'n"]}`);
        }
        midway = true;
      },
    });
    t.ok(midway, `ran in order ${order.join(' ')}`);
    t.equal(order.length, plan.partitions.length, 'every partition ran once');

    const d = plan.geometry.destination;
    for (const m of present) {
      const md = await agree(t, fx.paths[m], fx.handles[m]);
      t.same([md['Feature Map'], md['Raid Devices'], md['Layout'], md['Chunk Size'], parseInt(md['Data Offset'], 10)],
        ['0x0', `${d.members}`, d.layout, `${d.chunk / K}K`, d.dataOffset / 512], `m${m}: the new geometry, no reshape`);
    }
    const asm = await assembleArray(present.map((m) => ({ device: fx.handles[m].device, path: fx.paths[m] })));
    t.same(asm.missing, c.missing === undefined ? [] : [c.missing], 'assembles; only the missing slot is missing');
    const want = Buffer.concat([ref, Buffer.alloc(d.size - ref.length)]);
    const vol = quietVolume(asm.meta, { trackClean: false });
    t.equal(vol.size, d.size, `the volume grew to ${d.size}`);
    t.ok((await readAll(vol)).equals(want), 'every byte reads back through the destination geometry');
    if (c.missing === undefined) {
      for (let slot = 0; slot < d.members; slot++) {
        const degraded = quietVolume(withoutSlot(asm.meta, slot), { trackClean: false });
        t.ok((await readAll(degraded)).equals(want), `with slot ${slot} missing, parity rebuilds every byte`);
      }
    }
  });
}

t.test('a critical partition (destination over its own source) is refused', async (t) => {
  const fx = await fileArray(t, 3, 4 * MIB, { chunk: 64 * K, dataOffset: MIB });
  const plan = planMigration(fx.meta.geometry(), { layout: 'right-symmetric' });
  t.same(criticalPartitions(plan), plan.partitions.map((p) => p.index), 'the same rows: all critical');
  const devices = fx.handles.map((h) => h.device);
  const members = { source: new MemberSet(plan.geometry.source, devices), destination: new MemberSet(plan.geometry.destination, devices) };
  await rejectsWith(t, () => copyPartition(plan, members, 0), 'ENOTSUP', 'migration partition 0: its destination overlaps its own source and would need a backup');
});
