// A region whose parity may lag its data (pending resync) is resynced before a client request
// uses it, when the resync task has not got there (the controller's afterFetch). Here the task
// cannot get there: it exists and is paused, so the duty loop starts no other and no worker
// claims it. Parity of one stripe of the region is torn by hand; a client write into that stripe
// must not build on the torn parity (read-modify-write would carry the error into the new parity,
// and a later reconstruction of the stripe would return wrong data). The check afterwards
// finds 0 mismatches only if the region was resynced before the write.
import path from 'node:path';
import t from 'tap';
import { Controller } from '../../lib/controller/controller.js';
import { planRegions } from '../../lib/controller/plans.js';
import { LeaseStore, TaskStore, openDatabase } from '../../lib/coordination/index.js';
import type { LogEntry } from '../../lib/log.js';
import { NbdClient } from '../../lib/transport/client.js';
import { safeTeardown } from '../../harness/cleanup.js';
import { createArray } from '../../harness/raid-array.js';
import { flipBytes, leftSymmetric } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/prng.js';
import { tempDir } from '../helpers/temp-dir.js';

const MEMBERS = 4;
const CHUNK = 64 * 1024;
/** 3 data chunks of 64 KiB a stripe: regions of 128 stripes (lib/controller/plans.ts). */
const REGION_STRIPES = 128;
const REGION = 2;
const STRIPE = REGION * REGION_STRIPES + 5;

t.test('a region pending resync is resynced before a client write uses its parity', async (t) => {
  const dir = tempDir(t, 'nbdraid-resync-use-');
  const arr = await createArray({ dir, name: 'ru', members: MEMBERS, memberSize: '32M', chunk: '64K' });
  const [ex] = await arr.json<{ dataOffset: number }[]>('examine', arr.members[0]);
  const dataOffset = ex.dataOffset * 512;
  const stripes = Math.floor(((32 << 20) - dataOffset) / CHUNK);

  // The parity of STRIPE torn; its region recorded as pending resync, with a paused resync task.
  flipBytes(arr.members[leftSymmetric.parityDisk(STRIPE, MEMBERS)], dataOffset, CHUNK, [STRIPE]);
  const db = openDatabase(arr.state);
  new LeaseStore(db, null, 'ru').requireResync([REGION]);
  const tasks = new TaskStore(db);
  const paused = tasks.create({ kind: 'resync', arrayName: 'ru', initiator: null, dataset: { regions: [REGION] }, partitions: planRegions([REGION], stripes, REGION_STRIPES) });
  tasks.pause(paused.id);
  db.close();

  const log: LogEntry[] = [];
  const sock = path.join(dir, 'ru.sock');
  const ctl = await Controller.start({ stateDir: arr.state, arrayName: 'ru', listen: { path: sock }, log: (e) => { log.push(e); } });
  safeTeardown(t, 'controller stop', () => ctl.stop());
  const client = await NbdClient.connect({ path: sock, exportName: 'ru' });
  safeTeardown(t, 'client close', () => client.close());

  // 4 KiB into the first data chunk of STRIPE, over the torn bytes' offset within the chunk.
  const chunkAt = leftSymmetric.chunkVolumeOffset(STRIPE, (leftSymmetric.parityDisk(STRIPE, MEMBERS) + 1) % MEMBERS, MEMBERS, CHUNK);
  const torn = (STRIPE * 7919) % (CHUNK - 16);
  const at = chunkAt + Math.floor(torn / 4096) * 4096;
  const data = seededBytes(4096, 7);
  await client.write(at, data);
  await client.flush();
  t.ok((await client.read(at, data.length)).equals(data), 'the write reads back');

  const resynced = log.find((e) => e.event === 'region.resynced');
  t.same(resynced?.fields, { region: REGION, stripesFixed: 1 }, 'the region was resynced before the write, fixing the torn stripe');
  const check = db2(arr.state, (d) => new LeaseStore(d, null, 'ru').pendingResync().map((r) => r.region));
  t.notOk(check.includes(REGION), 'and is no longer pending resync');

  // Checked while the resync task is still paused: nothing but the resync before use fixed it.
  const result = await arr.json<{ state: string; result: { mismatches: number } }>('check', 'ru');
  t.equal(result.state, 'DONE', 'a check runs');
  t.equal(result.result.mismatches, 0, 'and finds parity consistent everywhere, the written stripe included');
  db2(arr.state, (d) => new TaskStore(d).cancel(paused.id));
  t.ok((await client.read(at, data.length)).equals(data), 'the data is still there');
});

/** Runs `fn` on a connection of this process to the state directory's database. */
function db2<T>(state: string, fn: (db: ReturnType<typeof openDatabase>) => T): T {
  const db = openDatabase(state);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
