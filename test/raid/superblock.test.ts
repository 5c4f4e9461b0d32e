import fs from 'node:fs';
import t from 'tap';
import { createArray } from '../../lib/raid/create.js';
import { closeMembers, createSparseMember, openMembers } from '../../lib/raid/members.js';
import {
  MAX_SECTOR, ROLE_FAULTY, ROLE_SPARE, type Superblock, checksum, decodeSuperblock, encodeSuperblock,
} from '../../lib/raid/superblock.js';
import { agree } from './mdadm-examine.js';
import { tempDir } from '../helpers/temp-dir.js';
import { rejectsWith } from './util.js';

const sample: Superblock = {
  featureMap: 2, setUuid: Buffer.from('00112233445566778899aabbccddeeff', 'hex'), name: 'alpha', ctime: 1700000000,
  level: 5, layout: 2, size: 129024, chunkSectors: 1024, raidDisks: 4, bitmapOffset: -16, dataOffset: 2048, dataSize: 129100,
  superOffset: 8, recoveryOffset: 4096, devNumber: 2, deviceUuid: Buffer.alloc(16, 7),
  badBlockLog: Buffer.from('0009080010000000', 'hex'), utime: 1700000100,
  events: 4242, resyncOffset: MAX_SECTOR, devRoles: [0, 1, 2, ROLE_FAULTY, ROLE_SPARE],
};

t.test('encode puts each field at md_p.h byte offsets, little-endian', async (t) => {
  const b = encodeSuperblock(sample);
  t.equal(b.length, 4096);
  t.equal(b.toString('hex', 0, 4), 'fc4e2ba9', 'magic');
  t.equal(b.readUInt32LE(4), 1, 'major_version');
  t.equal(b.readUInt32LE(8), 2, 'feature_map');
  t.equal(b.toString('hex', 16, 32), '00112233445566778899aabbccddeeff', 'set_uuid');
  t.equal(b.toString('utf8', 32, 37), 'alpha', 'set_name');
  t.equal(b[37], 0, 'set_name NUL padded');
  t.equal(b.readUInt32LE(64), 1700000000, 'ctime low word');
  t.equal(b.readUInt32LE(72), 5, 'level');
  t.equal(b.readUInt32LE(76), 2, 'layout');
  t.equal(b.readUInt32LE(80), 129024, 'size');
  t.equal(b.readUInt32LE(88), 1024, 'chunksize');
  t.equal(b.readUInt32LE(92), 4, 'raid_disks');
  t.equal(b.readInt32LE(96), -16, 'bitmap_offset, signed');
  t.equal(b.toString('hex', 184, 192), '0009080010000000', 'devflags and bad-block log kept byte for byte');
  t.equal(b.readUInt32LE(128), 2048, 'data_offset');
  t.equal(b.readUInt32LE(136), 129100, 'data_size');
  t.equal(b.readUInt32LE(144), 8, 'super_offset');
  t.equal(b.readUInt32LE(152), 4096, 'recovery_offset');
  t.equal(b.readUInt32LE(160), 2, 'dev_number');
  t.equal(b[168], 7, 'device_uuid');
  t.equal(b.readUInt32LE(200), 4242, 'events');
  t.equal(b.toString('hex', 208, 216), 'ffffffffffffffff', 'resync_offset = MaxSector');
  t.equal(b.readUInt32LE(220), 5, 'max_dev');
  t.same([0, 1, 2, 3, 4].map((i) => b.readUInt16LE(256 + 2 * i)), [0, 1, 2, 0xfffe, 0xffff], 'dev_roles');
  // Independent checksum: sum of u32 words over 256 + 2 * 5 bytes (odd count: last u16 added), csum as 0.
  let sum = 0n;
  for (let i = 0; i < 264; i += 4) if (i !== 216) sum += BigInt(b.readUInt32LE(i));
  sum += BigInt(b.readUInt16LE(264));
  t.equal(b.readUInt32LE(216), Number(((sum & 0xffffffffn) + (sum >> 32n)) & 0xffffffffn), 'sb_csum');
  t.equal(checksum(b), b.readUInt32LE(216));
});

t.test('decode round-trips and rejects damage with the reason', async (t) => {
  const b = encodeSuperblock(sample);
  const back = decodeSuperblock(b, 'm0');
  t.same({ ...back, setUuid: back.setUuid.toString('hex'), deviceUuid: back.deviceUuid.toString('hex') },
    { ...sample, setUuid: sample.setUuid.toString('hex'), deviceUuid: sample.deviceUuid.toString('hex') });
  const flipped = Buffer.from(b);
  flipped[100] ^= 1;
  await rejectsWith(t, () => decodeSuperblock(flipped, 'm0'), 'EINVAL', 'm0: md superblock checksum');
  const noMagic = Buffer.from(b);
  noMagic[0] = 0;
  await rejectsWith(t, () => decodeSuperblock(noMagic, 'm0'), 'EINVAL', 'm0: no md superblock');
  await rejectsWith(t, () => decodeSuperblock(Buffer.alloc(4096), 'm0'), 'EINVAL', 'm0: no md superblock');
});

t.test('mdadm --examine recognises members and agrees with nbdraid examine', async (t) => {
  const dir = tempDir(t, 'nbdraid-sb-');
  const paths = [0, 1, 2, 3].map((i) => `${dir}/m${i}.img`);
  for (const p of paths) createSparseMember(p, 40 << 20);
  const hs = await openMembers(paths);
  t.teardown(() => closeMembers(hs));
  const meta = await createArray(hs.map((h) => ({ device: h.device, path: h.path })), { name: 'sbtest', chunk: 64 << 10, layout: 'right-asymmetric' });
  for (const [i, p] of paths.entries()) {
    const md = await agree(t, p, hs[i]);
    t.equal(md['Events'], '0');
    t.equal(md['Array State'].split(' ')[0], 'AAAA');
  }
  t.equal(fs.statSync(paths[0]).blocks * 512 < (1 << 20), true, 'members stay sparse');

  const disk2 = meta.disks[2];
  disk2.role = ROLE_FAULTY;
  meta.clean = false;
  await meta.commit();
  const md0 = await agree(t, paths[0], hs[0]);
  t.equal(md0['Array State'].split(' ')[0], 'AA.A', 'faulty member shows missing');
  t.equal(md0['State'], 'active', 'dirty array');

  disk2.role = 2;
  disk2.recoveryOffset = 2048;
  meta.clean = true;
  await meta.commit();
  const md2 = await agree(t, paths[2], hs[2]);
  t.equal(md2['Recovery Offset'], '2048 sectors', 'recovery offset of a rebuilding member');
  t.equal(md2['Feature Map'], '0x2');
  t.equal(md2['Events'], '2');
});
