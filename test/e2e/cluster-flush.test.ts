// FLUSH is about the volume (architecture invariant 9), seen at the system-call level: a write
// acknowledged by controller B, then a FLUSH through controller A. A runs under strace, and its
// FLUSH reply may only come after A itself has fdatasync'ed every member (the page cache of a
// member file is shared by every process on the host, so A's fdatasync makes B's write durable).
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { NbdClient } from '../../lib/transport/client.js';
import { createArray, serveArray } from '../../harness/raid-array.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { spawnServer, startReady } from '../../harness/spawn-ready.js';
import { tempDir } from '../helpers/temp-dir.js';

t.test('a FLUSH on controller A syncs every member after a write acknowledged by controller B', async (t) => {
  const dir = tempDir(t, 'nbdraid-flush-');
  const arr = await createArray({ dir, name: 'fl', memberSize: '40M' });
  const b = await serveArray(t, arr);
  const log = path.join(dir, 'strace.log');
  const { endpoints: [{ port }] } = await startReady(t, {
    name: 'controller A under strace', timeoutMs: 30_000,
    launch: ([e]) => spawnServer('strace', ['-f', '-qq', '-y', '-e', 'trace=fdatasync,fsync', '-o', log,
      process.execPath, nbdraidCli, '--state', arr.state, 'serve', arr.name, '--listen', `127.0.0.1:${e.port}`]),
  });
  const ca = await NbdClient.connect({ host: '127.0.0.1', port: port as number, exportName: arr.name });
  const cb = await NbdClient.connect({ host: '127.0.0.1', port: b.ports[0], exportName: arr.name });
  await cb.write(3 * 1024 * 1024 + 512, Buffer.alloc(64 * 1024, 0x5c)); // acknowledged by B
  const mark = fs.statSync(log).size;
  await ca.flush();
  const after = fs.readFileSync(log, 'utf8').slice(mark);
  const synced = new Set([...after.matchAll(/fdatasync\(\d+<([^>]+)>/g)].map((m) => m[1]));
  for (const m of arr.members) t.ok(synced.has(m), `A fdatasync'ed ${path.basename(m)} before replying to FLUSH`);
  ca.close();
  cb.close();
});
