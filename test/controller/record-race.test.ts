// Membership changes have one writer and one order (architecture invariant 6): two controllers
// (two database connections, each with its own store and superblock writer) race a failure of
// the member being rebuilt against the end of its rebuild. Whichever order the database gives
// them, exactly one history results: fail first -> the finish is refused as stale and nothing of
// it is written; finish first -> the member is active, then failed. Afterwards the record and
// the superblocks on the members agree, at the events the writer recorded.
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ArrayRegistry, openDatabase } from '../../lib/coordination/index.js';
import { RecordStore } from '../../lib/controller/record-store.js';
import { SuperblockWriter } from '../../lib/controller/superblock-writer.js';
import { readSuperblock } from '../../lib/raid/metadata.js';
import { StaleChange } from '../../lib/raid/metadata-store.js';
import { ROLE_FAULTY } from '../../lib/raid/superblock.js';
import { FileDevice } from '../../lib/transport/file-device.js';
import { createArray } from '../../harness/raid-array.js';
import { tempDir } from '../helpers/temp-dir.js';

async function setup(t: Test) {
  const dir = tempDir(t, 'nbdraid-race-');
  const arr = await createArray({ dir, name: 'race', members: 4, memberSize: '8M', chunk: '64K' });
  const spare = path.join(dir, 'spare');
  fs.copyFileSync(arr.members[2], spare); // same size; its superblock is rewritten as the rebuilding member
  const controllers = [0, 1].map(() => {
    const db = openDatabase(arr.state);
    t.teardown(() => db.close());
    const reg = new ArrayRegistry(db, { controller: null, actor: 'test' });
    const writer = new SuperblockWriter(reg, arr.state, 'race');
    return { reg, writer, store: new RecordStore(reg, writer) };
  });
  const [a] = controllers;
  a.reg.update('race', (r) => {
    const old = r.members.find((m) => m.slot === 2)!;
    old.state = 'removed';
    r.members.push({ slot: 2, path: spare, state: 'rebuilding', deviceUuid: old.deviceUuid.replace(/^./, 'f'), devNumber: 4, recoveryOffset: 0 });
  });
  await a.writer.sync();
  return { arr, spare, controllers };
}

/** The record's state of the spare, and each live member's superblock view of it. */
async function agreement(reg: ArrayRegistry, arr: { members: string[] }, spare: string) {
  const rec = reg.require('race');
  const m = rec.members.find((x) => x.path === spare)!;
  const written = reg.written('race')!;
  const sbs = await Promise.all([arr.members[0], arr.members[1], arr.members[3]].map(async (p) => {
    const dev = await FileDevice.open(p, { readOnly: true });
    try {
      return await readSuperblock(dev, p);
    } finally {
      await dev.close();
    }
  }));
  return { state: m.state, roles: sbs.map((s) => s.devRoles[4]), events: sbs.map((s) => s.events), writtenEvents: written.events };
}

t.test('fail first: the finish is refused, record and superblocks say faulty', async (t) => {
  const { arr, spare, controllers: [a, b] } = await setup(t);
  const fail = b.store.commit({ kind: 'failed', slot: 2, path: spare, reason: 'test' });
  const finish = a.store.commit({ kind: 'rebuilt', slot: 2, path: spare });
  const [f, r] = await Promise.allSettled([fail, finish]);
  t.equal(f.status, 'fulfilled', 'the failure is recorded');
  t.ok(r.status === 'rejected' && r.reason instanceof StaleChange, 'the finish is refused as stale');
  const s = await agreement(a.reg, arr, spare);
  t.equal(s.state, 'faulty');
  t.same(s.roles, [ROLE_FAULTY, ROLE_FAULTY, ROLE_FAULTY], 'every survivor records it faulty');
  t.same(s.events, [s.writtenEvents, s.writtenEvents, s.writtenEvents], 'at the events the writer recorded');
});

t.test('finish first: active, then failed; both written in that order', async (t) => {
  const { arr, spare, controllers: [a, b] } = await setup(t);
  await a.store.commit({ kind: 'rebuilt', slot: 2, path: spare });
  const mid = await agreement(b.reg, arr, spare);
  t.same([mid.state, mid.roles], ['active', [2, 2, 2]], 'rebuilt: active in slot 2 everywhere');
  await b.store.commit({ kind: 'failed', slot: 2, path: spare, reason: 'test' });
  const s = await agreement(a.reg, arr, spare);
  t.same([s.state, s.roles], ['faulty', [ROLE_FAULTY, ROLE_FAULTY, ROLE_FAULTY]]);
  t.ok(s.events[0] >= mid.events[0] + 2, 'the failure leaves it 2 events behind');
});

t.test('a writer never writes an older record over a newer one', async (t) => {
  const { arr, spare, controllers: [a, b] } = await setup(t);
  // Interleave many changes from both sides; each writer writes whatever the record is when it runs.
  const ops: Promise<unknown>[] = [];
  for (let i = 0; i < 10; i++) {
    ops.push(a.store.commit({ kind: 'recovered', slot: 2, path: spare, sectors: (i + 1) * 128 }).catch(() => undefined));
    ops.push(b.writer.sync());
  }
  ops.push(b.store.commit({ kind: 'failed', slot: 2, path: spare, reason: 'test' }));
  await Promise.all(ops);
  await a.writer.sync();
  const s = await agreement(a.reg, arr, spare);
  t.same([s.state, s.roles], ['faulty', [ROLE_FAULTY, ROLE_FAULTY, ROLE_FAULTY]], 'the last change is what the members hold');
  t.same(s.events, [s.writtenEvents, s.writtenEvents, s.writtenEvents]);
});
