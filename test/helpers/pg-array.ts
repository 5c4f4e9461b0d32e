// An array on PostgreSQL for in-process controller tests: members made and recorded by the CLI on
// the state directory's SQLite database, then the record moved to PostgreSQL as it is (the
// SQLite database removed, so nothing can read the old copy).
import fs from 'node:fs';
import path from 'node:path';
import { ArrayRegistry } from '../../lib/coordination/arrays.js';
import { openDatabase } from '../../lib/coordination/db.js';
import type { PgBackend } from '../../lib/coordination/pg/index.js';
import type { TestArray } from '../../harness/raid-array.js';

export async function moveToPostgres(arr: TestArray, backend: PgBackend): Promise<void> {
  const db = openDatabase(arr.state);
  const reg = new ArrayRegistry(db);
  const rec = reg.get(arr.name);
  const written = reg.written(arr.name);
  db.close();
  if (!rec || !written) throw new Error(`no record of ${arr.name} in ${arr.state}`);
  for (const f of fs.readdirSync(arr.state)) if (f.startsWith('nbdraid.db')) fs.rmSync(path.join(arr.state, f), { force: true });
  await backend.createArray(rec);
  const admin = await backend.register();
  await backend.ops(admin.id).recordWritten(arr.name, written.events, written.state);
  await backend.stop(admin.id);
}
