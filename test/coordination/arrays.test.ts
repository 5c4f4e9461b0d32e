import t from 'tap';
import { join } from 'node:path';
import { openDatabase, migrate } from '../../lib/coordination/db.js';
import { migrations } from '../../lib/coordination/schema.js';
import { ArrayRegistry, DEFAULT_THROTTLE, type NewArray } from '../../lib/coordination/arrays.js';
import { EventLog } from '../../lib/coordination/events.js';
import { tempStateDir as stateDir, throwsCode } from '../helpers/coordination.js';


const sample: NewArray = {
  name: 'md0', uuid: 'a1b2', level: 5, layout: 'left-symmetric', chunk: 524288, raidDisks: 3,
  dataOffset: 2048 * 512, memberSize: 1 << 30,
  members: [0, 1, 2].map((slot) => ({ slot, path: `/tmp/m${slot}`, state: 'active' as const, deviceUuid: `d${slot}` })),
};

t.test('openDatabase creates the directory, uses WAL and migrates once', async (t) => {
  const dir = join(stateDir(t), 'nested', 'state');
  const db = openDatabase(dir);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.ok((db.pragma('busy_timeout', { simple: true }) as number) > 0);
  const latest = migrations[migrations.length - 1].version;
  t.equal(migrate(db), latest, 'migrating again is a no-op');
  const again = openDatabase(dir);
  t.equal((again.prepare('SELECT COUNT(*) AS n FROM schema_version').get() as { n: number }).n, migrations.length, 'each migration applied once');
  again.close();
  db.close();
});

t.test('create, get, require, list, update, remove', async (t) => {
  const db = openDatabase(stateDir(t));
  const reg = new ArrayRegistry(db);
  const rec = reg.create(sample);
  t.equal(rec.revision, 1);
  t.same(rec.throttle, DEFAULT_THROTTLE);
  t.same(rec.members, sample.members);
  t.same(reg.get('md0'), rec);
  t.equal(reg.get('nope'), undefined);
  throwsCode(t, () => reg.create(sample), 'EEXIST');
  throwsCode(t, () => reg.require('nope'), 'ENOENT', /^array nope: .*nbdraid create/);
  const up = reg.update('md0', (r) => { r.members[1].state = 'faulty'; });
  t.equal(up.revision, 2);
  t.equal(reg.revision('md0'), 2);
  t.equal(reg.get('md0')?.members[1].state, 'faulty');
  throwsCode(t, () => reg.update('md0', (r) => { r.name = 'x'; }), 'EINVAL');
  t.equal(reg.revision('md0'), 2, 'a refused update changes nothing');
  reg.create({ ...sample, name: 'md1', uuid: 'c3' });
  t.same(reg.list().map((r) => r.name), ['md0', 'md1']);
  reg.remove('md1');
  throwsCode(t, () => reg.remove('md1'), 'ENOENT');
  t.same(reg.list().map((r) => r.name), ['md0']);
  const kinds = new EventLog(db).list().map((e) => e.kind);
  t.same(kinds, ['array.created', 'array.updated', 'array.created', 'array.removed']);
  db.close();
});

t.test('another connection sees an update through dataVersion, revision and watch', async (t) => {
  const dir = stateDir(t);
  const a = new ArrayRegistry(openDatabase(dir));
  const b = new ArrayRegistry(openDatabase(dir));
  a.create(sample);
  const v0 = b.dataVersion();
  const seen = new Promise<number | undefined>((resolve) => {
    const stop = b.watch('md0', (rec) => { stop(); resolve(rec?.revision); }, 20);
  });
  a.update('md0', (r) => { r.throttle.maxMBps = 10; });
  t.not(b.dataVersion(), v0);
  t.equal(await seen, 2);
  t.equal(b.get('md0')?.throttle.maxMBps, 10);
});
