// Random sequences of writes, zeroes, trims, flushes and reads (some concurrent, on shared stripes)
// against a flat reference buffer, over every layout, 3..6 members and chunks of 4 KiB..512 KiB.
// After each sequence every stripe's parity checks, and with any one member left out every read
// returns the same bytes.
import t from 'tap';
import { LAYOUTS, type LayoutName } from '../../lib/raid/geometry.js';
import type { RaidVolume } from '../../lib/raid/volume.js';
import { memoryArray, quietVolume, readAll, withoutSlot } from './fixture.js';
import { randomBytes, rng } from '../helpers/prng.js';

type Op = { kind: 'write' | 'zero' | 'trim' | 'read'; offset: number; length: number; fua: boolean };

function randomOp(rand: () => number, size: number, stripeData: number, chunk: number): Op {
  const r = rand();
  const kind = r < 0.55 ? 'write' : r < 0.7 ? 'zero' : r < 0.8 ? 'trim' : 'read';
  const shape = rand();
  let length: number;
  if (shape < 0.3) length = 1 + Math.floor(rand() * 600); // small, unaligned
  else if (shape < 0.6) length = 512 * (1 + Math.floor(rand() * (chunk / 512))); // up to a chunk
  else if (shape < 0.85) length = 512 * (1 + Math.floor(rand() * (2 * stripeData / 512))); // up to two stripes
  else length = stripeData; // a whole stripe's worth
  length = Math.min(length, size);
  const aligned = rand() < 0.5;
  let offset = Math.floor(rand() * (size - length + 1));
  if (aligned) offset = Math.min(size - length, Math.floor(offset / stripeData) * stripeData);
  return { kind, offset, length, fua: rand() < 0.2 };
}

async function apply(vol: RaidVolume, ref: Buffer, op: Op, rand: () => number): Promise<string | undefined> {
  const { offset, length } = op;
  if (op.kind === 'write') {
    const data = randomBytes(rand, length);
    await vol.write(offset, data, { fua: op.fua });
    data.copy(ref, offset);
  } else if (op.kind === 'zero') {
    await vol.writeZeroes(offset, length, { fua: op.fua });
    ref.fill(0, offset, offset + length);
  } else if (op.kind === 'trim') {
    await vol.trim(offset, length); // a hint: contents are kept
  } else {
    const out = Buffer.alloc(length);
    await vol.read(offset, out);
    if (!out.equals(ref.subarray(offset, offset + length))) return `read ${offset}+${length} differs`;
  }
  return undefined;
}

const overlaps = (a: Op, b: Op) => a.offset < b.offset + b.length && b.offset < a.offset + a.length;

/** Runs `count` ops in batches; a batch runs concurrently, its ops on disjoint bytes (often one stripe). */
async function runSequence(vol: RaidVolume, ref: Buffer, rand: () => number, count: number): Promise<string[]> {
  const errors: string[] = [];
  const g = vol.g;
  for (let done = 0; done < count;) {
    const batch: Op[] = [];
    const want = 1 + Math.floor(rand() * 4);
    for (let tries = 0; batch.length < want && tries < 20; tries++) {
      const op = randomOp(rand, vol.size, g.stripeData, g.chunk);
      if (!batch.some((b) => overlaps(b, op))) batch.push(op);
    }
    const results = await Promise.all(batch.map((op) => apply(vol, ref, op, rand)));
    for (const r of results) if (r) errors.push(r);
    if (rand() < 0.2) await vol.flush();
    done += batch.length;
  }
  return errors;
}

const layouts = Object.keys(LAYOUTS) as LayoutName[];
const chunks = [4096, 16384, 65536, 524288];

t.test('random sequences keep data and parity right on every layout, member count and chunk', async (t) => {
  let seed = 1;
  for (const layout of layouts) {
    for (let n = 3; n <= 6; n++) {
      for (const chunk of chunks) {
        const stripes = chunk >= 524288 ? 3 : chunk >= 65536 ? 5 : 12;
        const rand = rng(seed++);
        const { meta } = await memoryArray(n, chunk, layout, stripes);
        const vol = quietVolume(meta);
        const ref = Buffer.alloc(vol.size);
        const label = `${layout} n=${n} chunk=${chunk / 1024}K`;
        const errors = await runSequence(vol, ref, rand, chunk >= 524288 ? 16 : 40);
        t.same(errors, [], `${label}: reads during the sequence`);
        t.ok((await readAll(vol)).equals(ref), `${label}: whole volume equals the reference`);
        t.same(await vol.checkStripes(0, vol.g.stripes), [], `${label}: every stripe's parity checks`);
        for (let slot = 0; slot < n; slot++) {
          const degraded = quietVolume(withoutSlot(meta, slot), { trackClean: false });
          if (!(await readAll(degraded)).equals(ref)) t.fail(`${label}: reads without member ${slot} differ`);
        }
        t.pass(`${label}: reads without each one member are identical`);
        t.equal(vol.locks.size, 0, 'no stripe lock left held');
        await vol.close();
      }
    }
  }
});

t.test('degraded from the start: writes keep survivors consistent, rebuild restores the member', async (t) => {
  let seed = 1000;
  for (const layout of layouts) {
    for (const [n, chunk] of [[3, 4096], [4, 65536], [5, 16384], [6, 4096]]) {
      for (let missing = 0; missing < n; missing += 2) {
        const rand = rng(seed++);
        const { meta, devices } = await memoryArray(n, chunk, layout, 6);
        const vol = quietVolume(withoutSlot(meta, missing));
        const ref = Buffer.alloc(vol.size);
        const label = `${layout} n=${n} chunk=${chunk / 1024}K without ${missing}`;
        t.same(await runSequence(vol, ref, rand, 30), [], `${label}: reads match`);
        t.ok((await readAll(vol)).equals(ref), `${label}: whole volume matches`);
        // Rebuild onto the member's own device, zeroed first so nothing of its old content helps.
        await devices[missing].writeZeroes(0, devices[missing].size);
        await vol.addRebuildMember(missing, devices[missing]);
        await vol.rebuildStripes(missing, 0, 3);
        await vol.write(0, randomBytes(rand, 1000)).then(() => undefined);
        const head = Buffer.alloc(1000);
        await vol.read(0, head);
        head.copy(ref, 0);
        await vol.rebuildStripes(missing, 3, vol.g.stripes - 3);
        await vol.finishRebuild(missing);
        t.same(await vol.checkStripes(0, vol.g.stripes), [], `${label}: parity checks after rebuild`);
        const other = (missing + 1) % n;
        const view = quietVolume(withoutSlot(vol.meta, other), { trackClean: false });
        t.ok((await readAll(view)).equals(ref), `${label}: rebuilt member serves reads`);
        await vol.close();
      }
    }
  }
});
