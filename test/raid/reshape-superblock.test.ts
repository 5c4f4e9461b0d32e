// md's reshape fields in the v1.2 superblock: byte offsets and round trip; a migration recorded by
// nbdraid on member files is a reshape in progress for the real `mdadm --examine`, with the right
// destination and boundary, forwards and backwards; assembly refuses such members by saying a
// migration is in progress and what to do, and writes nothing.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { assembleArray } from '../../lib/raid/assemble.js';
import { readSuperblock } from '../../lib/raid/metadata.js';
import { planMigration } from '../../lib/raid/migration-offset.js';
import type { PartitionState } from '../../lib/raid/migration-order.js';
import { reshapeFromSuperblock } from '../../lib/raid/reshape-fields.js';
import { advanceReshape, beginReshape } from '../../lib/raid/reshape-metadata.js';
import { MAX_SECTOR, type Superblock, decodeSuperblock, encodeSuperblock } from '../../lib/raid/superblock.js';
import { runTool } from '../../harness/run-tool.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { fileArray } from './fixture.js';
import { agree } from './mdadm-examine.js';
import { rejectsWith } from './util.js';

const K = 1024;
const MIB = 1 << 20;

const sample: Superblock = {
  featureMap: 4 | 32 | 64, setUuid: Buffer.alloc(16, 1), name: 'r', ctime: 1700000000, level: 5, layout: 2, size: 8192,
  chunkSectors: 128, raidDisks: 5, bitmapOffset: 0, dataOffset: 2048, dataSize: 9000, superOffset: 8, recoveryOffset: 0,
  devNumber: 1, deviceUuid: Buffer.alloc(16, 2), badBlockLog: Buffer.alloc(8), utime: 1700000001, events: 9,
  resyncOffset: MAX_SECTOR, devRoles: [0, 1, 2, 3, 4],
  reshape: { newLevel: 5, position: 123456, deltaDisks: -1, newLayout: 1, newChunkSectors: 32, newOffset: -768 },
};

t.test('reshape fields at md_p.h offsets, signed where md reads them signed, and back', async (t) => {
  const b = encodeSuperblock(sample);
  t.equal(b.readUInt32LE(100), 5, 'new_level');
  t.equal(Number(b.readBigUInt64LE(104)), 123456, 'reshape_position');
  t.equal(b.readInt32LE(112), -1, 'delta_disks');
  t.equal(b.readUInt32LE(116), 1, 'new_layout');
  t.equal(b.readUInt32LE(120), 32, 'new_chunk');
  t.equal(b.readInt32LE(124), -768, 'new_offset');
  t.equal(b.readUInt32LE(128), 2048, 'data_offset untouched');
  t.same(decodeSuperblock(b, 'm').reshape, sample.reshape, 'round trip');
  const idle = encodeSuperblock({ ...sample, featureMap: 0, reshape: undefined });
  t.ok(idle.subarray(100, 128).every((x) => x === 0), 'no reshape: the fields are zero');
  t.equal(decodeSuperblock(idle, 'm').reshape, undefined, 'and none is decoded');
});

/** A 3-member array of 64K chunks with one more file to add, and a plan to grow into it. */
async function growing(t: Parameters<typeof fileArray>[0], room: 'before' | 'after') {
  const memberBytes = 40 * MIB;
  const fx = await fileArray(t, 3, memberBytes, { chunk: 64 * K, dataOffset: room === 'before' ? MIB : 8192, extra: 1 });
  const usedBytes = 24 * MIB;
  fx.meta.info.sizeSectors = usedBytes / 512; // leave room after the data for the backwards case
  const plan = planMigration(fx.meta.geometry(), { members: 4, chunk: 16 * K, layout: 'right-asymmetric' }, {
    partitionBytes: MIB, room: { lowest: 8192, memberBytes },
  });
  beginReshape(fx.meta, plan, [{ device: fx.handles[3].device, path: fx.paths[3] }]);
  return { ...fx, plan };
}

for (const room of ['before', 'after'] as const) {
  t.test(`mdadm --examine shows nbdraid's migration as a reshape in progress (room ${room})`, async (t) => {
    const { paths, handles, meta, plan } = await growing(t, room);
    const direction = room === 'before' ? 'forwards' : 'backwards';
    t.equal(plan.direction, direction);
    const done = Math.floor(plan.partitions.length / 3);
    const states = plan.partitions.map((_, i): PartitionState => ((direction === 'forwards' ? i < done : i >= plan.partitions.length - done) ? 'complete' : 'pending'));
    advanceReshape(meta, plan, states);
    t.same(await meta.commit(), []);
    const { source, destination } = plan.geometry;
    const boundary = direction === 'forwards' ? plan.partitions[done].volume.lo : plan.partitions[plan.partitions.length - done - 1].volume.hi;
    for (const [i, p] of paths.entries()) {
      const md = await agree(t, p, handles[i]);
      const added = i === 3;
      t.equal(md['Feature Map'], `0x${(4 | (added ? 0 : 64) | (direction === 'backwards' ? 32 : 0)).toString(16)}`, `m${i}: feature map`);
      t.equal(md['Raid Devices'], '4');
      t.equal(md['Delta Devices'], '1 (3->4)');
      t.equal(md['New Layout'], 'right-asymmetric');
      t.equal(md['New Chunksize'], '16K');
      t.equal(md['Layout'], 'left-symmetric', 'the old layout stays in layout');
      t.equal(md['Chunk Size'], '64K');
      t.equal(parseInt(md["Reshape pos'n"], 10), boundary / K, `m${i}: boundary ${boundary / K}K`);
      t.equal(parseInt(md['Data Offset'], 10), (added ? destination.dataOffset : source.dataOffset) / 512, `m${i}: data offset`);
      t.equal(md['New Offset'] === undefined ? null : parseInt(md['New Offset'], 10), added ? null : destination.dataOffset / 512, `m${i}: new offset`);
      const back = reshapeFromSuperblock(await readSuperblock(handles[i].device, p));
      t.same(back?.reshape, added ? { ...meta.info.reshape, offsetDelta: 0 } : meta.info.reshape, `m${i}: nbdraid reads back the migration`);
      t.equal(back?.oldRaidDisks, 3);
    }
  });
}

t.test('assembly refuses members in the middle of a migration, says so, and writes nothing', async (t) => {
  const { dir, paths, handles, meta, plan, close } = await growing(t, 'before');
  advanceReshape(meta, plan, plan.partitions.map((_, i) => (i < 2 ? 'complete' : 'pending')));
  await meta.commit();
  const before = paths.map((p) => fs.readFileSync(p).subarray(0, 8192).toString('hex'));
  await rejectsWith(t, () => assembleArray(handles.map((h, i) => ({ device: h.device, path: `m${i}` }))), 'ENOTSUP',
    'assemble: m0: a migration is in progress (3 -> 4 members, 64K -> 16K chunk, left-symmetric -> right-asymmetric, 1M -> ');
  await close(); // the CLI takes the members' locks
  const state = path.join(dir, 'state');
  const r = await runTool('node', [nbdraidCli, '--state', state, 'assemble', 'g', ...paths], { allowFailure: true, timeoutMs: 30_000 });
  t.equal(r.code, 1, 'nbdraid assemble exits 1');
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  t.match(r.stderr, /a migration is in progress \(3 -> 4 members.*forwards, at 2\.25M of 48M\); nbdraid cannot resume a migration yet.*mdadm --assemble/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.same(paths.map((p) => fs.readFileSync(p).subarray(0, 8192).toString('hex')), before, 'superblocks unchanged');
  const st = await runTool('node', [nbdraidCli, '--state', state, 'status'], { allowFailure: true });
  t.match(st.stdout, /no arrays/, 'nothing registered');
});
