// md features on members that md created: what nbdraid does not implement is refused by name
// at assembly (nothing written); an internal bitmap is kept on every member nbdraid rewrites,
// never silently dropped; each member's bad-block log fields are kept byte for byte.
import t from 'tap';
import { assembleArray } from '../../lib/raid/assemble.js';
import { readSuperblock, writeSuperblock } from '../../lib/raid/metadata.js';
import { FEATURE_BITMAP_OFFSET } from '../../lib/raid/superblock.js';
import { memoryArray } from './fixture.js';

/** Rewrites every member's superblock as md would have written it with `change` applied. */
async function asMdWrote(devices: Parameters<typeof readSuperblock>[0][], change: (sb: Awaited<ReturnType<typeof readSuperblock>>, i: number) => void) {
  for (const [i, d] of devices.entries()) {
    const sb = await readSuperblock(d, `m${i}`);
    change(sb, i);
    await writeSuperblock(d, sb);
  }
}

t.test('an internal bitmap and bad-block log fields survive nbdraid rewriting the superblocks', async (t) => {
  const { devices } = await memoryArray(4, 16384, 'left-symmetric', 8);
  await asMdWrote(devices, (sb, i) => {
    sb.featureMap |= FEATURE_BITMAP_OFFSET;
    sb.bitmapOffset = 8;
    sb.badBlockLog = Buffer.from([0, 0, 8, 0, 0x10 + i, 0, 0, 0]);
  });
  const { meta } = await assembleArray(devices.map((device) => ({ device })));
  meta.disks[1].role = 0xfffe; // a failure: nbdraid writes the survivors
  const failed = await meta.commit(2);
  t.same(failed, []);
  for (const i of [0, 2, 3]) {
    const sb = await readSuperblock(devices[i], `m${i}`);
    t.ok(sb.featureMap & FEATURE_BITMAP_OFFSET, `m${i}: bitmap feature kept`);
    t.equal(sb.bitmapOffset, 8, `m${i}: bitmap offset kept`);
    t.same([...sb.badBlockLog], [0, 0, 8, 0, 0x10 + i, 0, 0, 0], `m${i}: its own bad-block log fields kept`);
  }
});

t.test('features nbdraid does not implement are refused by name, and nothing is written', async (t) => {
  for (const [bit, name] of [[0x400, 'partial parity log'], [0x8, 'bad blocks recorded'], [0x200, 'write journal'], [0x100000, 'feature bits 0x100000']] as const) {
    const { devices } = await memoryArray(3, 16384, 'left-symmetric', 4);
    await asMdWrote(devices, (sb) => { sb.featureMap |= bit; });
    const before = await readSuperblock(devices[0], 'm0');
    await t.rejects(assembleArray(devices.map((device, i) => ({ device, path: `m${i}` }))),
      { code: 'ENOTSUP', message: new RegExp(`m0 uses md features nbdraid does not implement \\(${name}\\); assemble it with mdadm`) }, `${name} refused`);
    t.equal((await readSuperblock(devices[0], 'm0')).events, before.events, 'nothing written');
  }
});
